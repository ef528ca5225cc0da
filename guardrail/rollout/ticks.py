"""Evaluation ticks: measure, judge, store — resumably.

A phase (``bake:<wave>``, ``recovery``) evaluates each policy's checks every
``interval`` from the phase's start. Tick ``k`` of a policy happens at
``start + k * interval``; its measurements are stored with that index and with the
judge's memory after the evaluation, so a resumed phase replays stored verdicts
instead of measuring again, and continues at the first tick that is not complete.

This loop runs once per check, region and tick: everything that does not change
between ticks is worked out once per phase (``_Plan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

from guardrail.clock import Clock
from guardrail.judging.coverage import Coverage
from guardrail.judging.evaluate import comparison_text, judge_check, warning_since
from guardrail.judging.judge import CheckState, Verdict, is_clean
from guardrail.rollout.control import ControlChecks
from guardrail.rollout.evaluation import Evaluator, Item
from guardrail.language.model import Check
from guardrail.state.protocol import Store


@dataclass(frozen=True)
class _Plan:
    """What an item's evaluation needs that never changes during a phase."""

    check: Check
    on_no_data: str
    reference: float | None
    comparison: str | None
    query: str


def _restore(row: dict[str, Any]) -> CheckState:
    evidence = row.get("evidence") or {}
    verdict = Verdict(row["status"], row["value"], row["threshold"], row["reference"], row["reason"] or "",
                      bool(row["pending"]), skipped=bool(evidence.get("skipped")))
    warning = CheckState(evidence["warning_since"]) if evidence.get("warning_since") is not None else None
    return CheckState(row["breach_since"], row["first_breach_at"], row["streak"], row["evaluations"],
                      row["failures"], row["inconclusives"], verdict, warning)


class Phase:
    """The ticks of one phase over a fixed set of items."""

    def __init__(self, *, rollout_id: str, name: str, start: float, items: list[Item], evaluator: Evaluator,
                 store: Store, clock: Clock, baselines: dict, realtime: bool,
                 reset_streaks: bool = False):
        self.rollout_id, self.name, self.start = rollout_id, name, start
        self.items, self.evaluator, self.store, self.clock = items, evaluator, store, clock
        self.states: dict[Item, CheckState] = {item: CheckState() for item in items}
        self.coverage: dict[Item, Coverage] = {item: Coverage() for item in items}
        """Covered time per item, rebuilt from the stored ticks on resume (``judging.coverage``)."""
        self.policies = sorted({item.policy for item in items})
        self.intervals = {p: evaluator.policies[p].interval for p in self.policies}
        self._by_policy = {p: [i for i in items if i.policy == p] for p in self.policies}
        self._plans = {}
        for item in items:
            check = evaluator.checks[(item.policy, item.check)]
            base = baselines.get((item.region, item.policy, item.check))
            self._plans[item] = _Plan(check, evaluator.policies[item.policy].on_no_data,
                                      base["value"] if base else None, comparison_text(check),
                                      evaluator.query_text(item))
        self.advisory = {item for item, plan in self._plans.items() if plan.check.advisory}
        """Warn-only checks: judged and stored, never holding the bake (``unclean``, ``lacking``)."""
        self.warned: list[Item] = []
        """Items whose verdict became ``warn`` at the latest tick evaluated (not replayed)."""
        self._control = ControlChecks(evaluator, items, start=start, store=store, rollout_id=rollout_id)
        self._stored: dict[tuple[int, Item], dict] = {}
        for row in store.measurements(rollout_id, name):
            item = Item(row["policy"], row["check"], row["region"])
            if item in self.states:
                self._stored[(row["tick"], item)] = row
        self.next_tick = {p: self._first_incomplete(p) for p in self.policies}
        for (tick, item), row in sorted(self._stored.items(), key=lambda kv: kv[0][0]):
            if tick < self.next_tick[item.policy]:
                self.states[item] = _restore(row)
                self.coverage[item].add(tick, row["at"], self.intervals[item.policy], self.states[item].last)
        if reset_streaks:  # a person resumed a halted rollout: count inconclusive evidence afresh
            self.states = {i: CheckState(s.breach_since, s.first_breach_at, 0, s.evaluations, s.failures,
                                         s.inconclusives, s.last) for i, s in self.states.items()}
        if realtime:  # missed ticks while nobody ran are skipped, not measured in the past
            now = clock.now()
            for p in self.policies:
                self.next_tick[p] = max(self.next_tick[p], int((now - start) // self.intervals[p]))

    def _first_incomplete(self, policy: str) -> int:
        items = self._by_policy[policy]
        tick = 0
        while items and all((tick, i) in self._stored for i in items):
            tick += 1
        return tick

    def next_time(self) -> float:
        return min(self.start + self.next_tick[p] * self.intervals[p] for p in self.policies)

    def run(self, *, before: Callable[[float], None] = lambda t: None) -> Iterator[tuple[float, list[Item]]]:
        """Forever: wait for the next tick, evaluate it, yield (time, items evaluated)."""
        while True:
            at = self.next_time()
            wait = at - self.clock.now()
            if wait > 0:
                self.clock.sleep(wait)
            before(at)
            due = [p for p in self.policies if abs(self.start + self.next_tick[p] * self.intervals[p] - at) < 1e-6]
            batch = [i for p in due for i in self._by_policy[p]]
            self._evaluate(batch, at)
            for p in due:
                self.next_tick[p] += 1
            yield at, batch

    def _evaluate(self, batch: list[Item], at: float) -> None:
        stored = self._stored
        fresh = [i for i in batch if (self.next_tick[i.policy], i) not in stored] if stored else batch
        control = self._control if self._control else None
        if control is not None:  # control checks measure windows, in flight while the instants are measured
            windows = control.submit([i for i in fresh if i in control], at)
            fresh = [i for i in fresh if i not in control]
        readings = self.evaluator.measure(fresh, at)
        states, plans = self.states, self._plans
        ticks: dict[str, list[list]] = {}
        self.warned = []
        for item in batch:
            tick = self.next_tick[item.policy]
            if stored and (tick, item) in stored:
                states[item] = _restore(stored[(tick, item)])
                self.coverage[item].add(tick, at, self.intervals[item.policy], states[item].last)
                continue
            plan = plans[item]
            if control is not None and item in control:
                verdict, state, detail = judge_check(plan.check, at=at, state=states[item],
                                                     on_no_data=plan.on_no_data,
                                                     control=control.evidence(item, windows))
            else:
                reading = readings[item]
                verdict, state, stale = judge_check(plan.check, at=at, state=states[item],
                                                    on_no_data=plan.on_no_data, reading=reading,
                                                    reference=plan.reference)
                detail = reading.detail
                if detail and detail.keys() == {"query"}:
                    detail = None  # the query is stored in its own field
                if stale:
                    detail = {**(detail or {}), **stale}
            if verdict.status == "warn" and (states[item].last is None or states[item].last.status != "warn"):
                self.warned.append(item)
            since = warning_since(state)
            if since is not None:
                detail = {**(detail or {}), "warning_since": since}
            states[item] = state
            self.coverage[item].add(tick, at, self.intervals[item.policy], verdict)
            evaluations = ticks.get(item.policy)
            if evaluations is None:
                evaluations = ticks[item.policy] = []
            evaluations.append([  # in the order of store_schema.PACKED
                item.region, item.check, verdict.status, verdict.value, verdict.threshold, verdict.reference,
                plan.comparison, verdict.pending, verdict.reason, plan.query, detail, state.breach_since,
                state.first_breach_at, state.inconclusive_streak, state.evaluations, state.failures,
                state.inconclusives])
        if ticks:
            self.store.add_ticks(self.rollout_id, [(self.name, policy, self.next_tick[policy], at, evaluations)
                                                   for policy, evaluations in ticks.items()],
                                 coverage=[(self.name, i.region, i.policy, i.check, self.coverage[i].covered,
                                            self.coverage[i].uncovered, self.coverage[i].spans,
                                            self.coverage[i].applies and i not in self.advisory)  # warn-only
                                           for i in batch])

    def lacking(self, required: float) -> dict[Item, float]:
        """Items that have covered less than ``required`` seconds, with what they lack."""
        out = {}
        for item, coverage in self.coverage.items():
            if item in self.advisory:
                continue
            missing = coverage.lacking(required)
            if missing > 1e-6:
                out[item] = missing
        return out

    def unclean(self) -> list[Item]:
        """Items whose latest verdict is not a clean pass (failed, inconclusive, pending, none),
        warn-only checks left out."""
        return [i for i, s in self.states.items() if not is_clean(s) and i not in self.advisory]
