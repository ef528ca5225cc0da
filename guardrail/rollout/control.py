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
is skipped: a pass that says so, recorded with its reason. Blocking there would make
every plan's last wave wait for a comparison that can no longer exist; that wave is
guarded by the absolute and ``compare: baseline`` checks, and every earlier wave was
compared against the regions that waited.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from guardrail.rollout.evaluation import Evaluator, Item
from guardrail.plugin.interfaces import RangeReading
from guardrail.judging.judge import CheckState, Verdict, judge_control
from guardrail.language.model import Check
from guardrail.judging.statistics import compare_to_control

NO_CONTROL = "no control region left: every region of the plan runs the new version"


def control_regions(evaluator: Evaluator, store: Any, rollout_id: str) -> list[str]:
    """Regions of the plan's waves whose deploy was never started, in wave order."""
    started = {s["key"].split(":", 1)[1] for s in store.steps(rollout_id, "deploy:")}
    return [r for w in evaluator.plan.rollout.waves for r in w.regions if r not in started]


def window(check: Check, interval: float, start: float, at: float) -> tuple[float, int]:
    """(window start, number of samples it holds) for a tick at ``at``."""
    begin = max(at - interval * check.min_samples, start)
    return begin, int((at - begin) / interval + 1e-9) + 1


def describe(check: Check) -> str:
    """The comparison as stored with each measurement."""
    effect = f", effect {check.effect_size:g}" if check.effect_size is not None else ""
    return f"control: {check.direction}, confidence {check.confidence:g}{effect}"


@dataclass
class Round:
    """The range measurements of one tick, in flight on the evaluator's pool."""

    at: float
    windows: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    deployed: dict[Item, Future] = field(default_factory=dict)
    control: dict[tuple[str, str], list[tuple[str, Future]]] = field(default_factory=dict)


class ControlChecks:
    """The ``compare: control`` items of one phase."""

    def __init__(self, evaluator: Evaluator, items: list[Item], *, start: float, store: Any, rollout_id: str):
        self.evaluator, self.start = evaluator, start
        self.items = {i for i in items if evaluator.checks[(i.policy, i.check)].compare == "control"}
        self.controls = control_regions(evaluator, store, rollout_id) if self.items else []

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
            begin, samples = batch.windows.setdefault(key, window(check, interval, self.start, at))
            if not self.controls or samples < check.min_samples:
                continue
            batch.deployed[item] = self.evaluator.submit_range(item, begin, at, interval)
            if key not in batch.control:
                batch.control[key] = [
                    (r, self.evaluator.submit_range(Item(item.policy, item.check, r), begin, at, interval))
                    for r in self.controls]
        return batch

    def judge(self, item: Item, batch: Round, state: CheckState,
              on_no_data: str) -> tuple[Verdict, CheckState, dict[str, Any]]:
        """The verdict of one item at the round's tick, and the evidence to store."""
        key = (item.policy, item.check)
        check = self.evaluator.checks[key]
        begin, samples = batch.windows[key]
        detail: dict[str, Any] = {"controls": self.controls, "window": [begin, batch.at]}
        if not self.controls:
            verdict, state = judge_control(check, None, at=batch.at, state=state, on_no_data=on_no_data,
                                           skipped=NO_CONTROL)
            return verdict, state, {**detail, "skipped": NO_CONTROL}
        if item not in batch.deployed:
            waiting = f"collecting samples: {samples} of {check.min_samples} since the phase started"
            verdict, state = judge_control(check, None, at=batch.at, state=state, on_no_data=on_no_data,
                                           waiting=waiting)
            return verdict, state, detail
        ours = _result(batch.deployed[item])
        theirs = [(region, _result(future)) for region, future in batch.control[key]]
        error = ours.error or next((r.error for _, r in theirs if r.error), None)
        if error:
            verdict, state = judge_control(check, None, at=batch.at, state=state, on_no_data=on_no_data, error=error)
            return verdict, state, detail
        comparison = compare_to_control([v for _, v in ours.points], [v for _, r in theirs for _, v in r.points],
                                        direction=check.direction, confidence=check.confidence,
                                        effect_size=check.effect_size, min_samples=check.min_samples)
        verdict, state = judge_control(check, comparison, at=batch.at, state=state, on_no_data=on_no_data)
        detail.update(p_value=comparison.p_value, ratio=comparison.ratio, deployed_samples=comparison.deployed_samples,
                      control_samples=comparison.control_samples,
                      control_samples_by_region={region: len(r.points) for region, r in theirs})
        return verdict, state, detail


def _result(future: Future) -> RangeReading:
    try:
        return future.result()
    except Exception as exc:  # the evaluator already turns plugin errors into readings; belt and braces
        return RangeReading(error=f"source error: {type(exc).__name__}: {exc}")
