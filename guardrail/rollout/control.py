"""``compare: control`` during a phase: which regions are the control, which window is
compared, measuring both sides concurrently, and the evidence kept.

The control is every region of the plan whose deploy was never started: it still runs
the old version (a region that was deployed and rolled back is not one, nor is a
region whose deploy failed halfway). At a tick ``t`` the window is
``[max(t - interval * min_samples, phase start), t]``, sampled every ``interval``, the
same window for the deployed region and for each control region; the control regions'
samples are pooled. The window never reaches back before the phase started, so
pre-change samples cannot dilute the deployed side; until it holds ``min_samples``
points the verdict is a pending pass ("collecting samples"), which does not count as
inconclusive evidence but does keep the wave from being promoted.

With no control region left (the last wave deploys everything that remains) the check
follows its ``on_no_control``: ``baseline`` (the default) compares the deployed window
with the region's own window before the change (as long as the wave's bake, ending
when the region's wave captured its baselines, sampled every interval), so a
regression only a comparison would see is still judged; ``inconclusive`` says there is
no comparison; ``skip`` passes without one and does not count toward covered time.
Each evaluation records what it was judged against (``judged_against``).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from guardrail.judging.evaluate import DEFAULT_BASELINE_WINDOW, NO_CONTROL, ControlEvidence, control_window
from guardrail.plugin.readings import RangeReading
from guardrail.rollout.evaluation import Evaluator, Item

def control_regions(evaluator: Evaluator, store: Any, rollout_id: str) -> list[str]:
    """Regions of the plan's waves whose deploy was never started, in wave order."""
    started = {s["key"].split(":", 1)[1] for s in store.steps(rollout_id, "deploy:")}
    return [r for w in evaluator.plan.rollout.waves for r in w.regions if r not in started]


@dataclass
class Round:
    """The range measurements of one tick, in flight on the evaluator's pool."""

    at: float
    windows: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    deployed: dict[Item, Future] = field(default_factory=dict)
    control: dict[tuple[str, str], list[tuple[str, Future]]] = field(default_factory=dict)
    before: dict[Item, Future] = field(default_factory=dict)
    """With no control left: each item's window before the change."""


class ControlChecks:
    """The ``compare: control`` items of one phase."""

    def __init__(self, evaluator: Evaluator, items: list[Item], *, start: float, store: Any, rollout_id: str):
        self.evaluator, self.start = evaluator, start
        self.items = {i for i in items if evaluator.checks[(i.policy, i.check)].compare == "control"}
        self.controls = control_regions(evaluator, store, rollout_id) if self.items else []
        self.store, self.rollout_id = store, rollout_id
        self._before: dict[Item, Future] = {}

    def __contains__(self, item: Item) -> bool:
        return item in self.items

    def __bool__(self) -> bool:
        return bool(self.items)

    def submit(self, items: list[Item], at: float) -> Round:
        """Start measuring the windows of ``items`` (and of their control regions, once per check)."""
        batch = Round(at)
        for item in items:
            key = (item.policy, item.check)
            check = self.evaluator.checks[key]
            interval = self.evaluator.policies[item.policy].interval
            begin, samples = batch.windows.setdefault(key, control_window(check, interval, self.start, at))
            if not self.controls and check.on_no_control == "baseline":
                batch.before[item] = self._window_before(item, interval)
            if (not self.controls and check.on_no_control != "baseline") or samples < check.min_samples:
                continue
            batch.deployed[item] = self.evaluator.submit_range(item, begin, at, interval)
            if not self.controls:
                continue
            if key not in batch.control:
                batch.control[key] = [
                    (r, self.evaluator.submit_range(Item(item.policy, item.check, r), begin, at, interval))
                    for r in self.controls]
        return batch

    def evidence(self, item: Item, batch: Round) -> ControlEvidence:
        """What the comparison of ``item`` rests on at the round's tick."""
        key = (item.policy, item.check)
        window = batch.windows[key]
        if not self.controls:
            deployed = _result(batch.deployed[item]) if item in batch.deployed else None
            before = _result(batch.before[item]) if item in batch.before else None
            return ControlEvidence(window, deployed, skipped=NO_CONTROL, baseline=before)
        if item not in batch.deployed:
            return ControlEvidence(window)
        return ControlEvidence(window, _result(batch.deployed[item]),
                               [(region, _result(future)) for region, future in batch.control[key]])


    def _window_before(self, item: Item, interval: float) -> Future:
        """The item's region's window before its change (measured once per phase)."""
        if item not in self._before:
            wave = self.evaluator.plan.rollout.wave_of(item.region)
            step = self.store.step(self.rollout_id, f"baseline:{wave.name}")
            end = (step["detail"] or {}).get("at") if step else None
            end = self.start if end is None else end
            span = wave.bake or DEFAULT_BASELINE_WINDOW
            self._before[item] = self.evaluator.submit_range(item, end - span, end, interval)
        return self._before[item]


def _result(future: Future) -> RangeReading:
    try:
        return future.result()
    except Exception as exc:  # the evaluator already turns plugin errors into readings; belt and braces
        return RangeReading(error=f"source error: {type(exc).__name__}: {exc}")
