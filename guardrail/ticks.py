"""Evaluation ticks: measure, judge, store — resumably.

A phase (``preflight``, ``bake:<wave>``, ``recovery``) evaluates each policy's checks
every ``interval`` from the phase's start. Tick ``k`` of a policy happens at
``start + k * interval``; its measurements are stored with that index, so a resumed
phase replays stored verdicts instead of measuring again, and continues at the first
tick that is not complete.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable, Iterator

from .clock import Clock
from .evaluation import Evaluator, Item
from .judge import CheckState, Verdict, is_clean, judge
from .store import SQLiteStore


def state_to_dict(state: CheckState) -> dict:
    return asdict(state)


def state_from_dict(data: dict) -> CheckState:
    last = data.get("last")
    return CheckState(**{**data, "last": Verdict(**last) if last else None})


class Phase:
    """The ticks of one phase over a fixed set of items."""

    def __init__(self, *, rollout_id: str, name: str, start: float, items: list[Item], evaluator: Evaluator,
                 store: SQLiteStore, clock: Clock, baselines: dict, realtime: bool,
                 reset_streaks: bool = False):
        self.rollout_id, self.name, self.start = rollout_id, name, start
        self.items, self.evaluator, self.store, self.clock = items, evaluator, store, clock
        self.baselines = baselines
        self.states: dict[Item, CheckState] = {item: CheckState() for item in items}
        self.policies = sorted({item.policy for item in items})
        self.intervals = {p: evaluator.policies[p].interval for p in self.policies}
        self._stored: dict[tuple[int, Item], dict] = {}
        for row in store.measurements(rollout_id, name):
            item = Item(row["policy"], row["check"], row["region"])
            if item in self.states:
                self._stored[(row["tick"], item)] = row
        self.next_tick = {p: self._first_incomplete(p) for p in self.policies}
        for (tick, item), row in sorted(self._stored.items(), key=lambda kv: kv[0][0]):
            if tick < self.next_tick[item.policy]:
                state = state_from_dict(row["evidence"]["state"])
                self.states[item] = state if not reset_streaks else CheckState(**{**asdict(state), "inconclusive_streak": 0, "last": state.last})
        if realtime:  # missed ticks while nobody ran are skipped, not measured in the past
            now = clock.now()
            for p in self.policies:
                self.next_tick[p] = max(self.next_tick[p], int((now - start) // self.intervals[p]))

    def _first_incomplete(self, policy: str) -> int:
        items = [i for i in self.items if i.policy == policy]
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
            batch = [i for i in self.items if i.policy in due]
            self._evaluate(batch, at)
            for p in due:
                self.next_tick[p] += 1
            yield at, batch

    def _evaluate(self, batch: list[Item], at: float) -> None:
        fresh = [i for i in batch if (self.next_tick[i.policy], i) not in self._stored]
        readings = self.evaluator.measure(fresh, at)
        rows = []
        for item in batch:
            tick = self.next_tick[item.policy]
            stored = self._stored.get((tick, item))
            if stored is not None:
                self.states[item] = state_from_dict(stored["evidence"]["state"])
                continue
            check = self.evaluator.checks[(item.policy, item.check)]
            policy = self.evaluator.policies[item.policy]
            base = self.baselines.get((item.region, item.policy, item.check))
            reference = base["value"] if base else None
            reading = readings[item]
            verdict, self.states[item] = judge(check, reading, at=at, state=self.states[item],
                                               on_no_data=policy.on_no_data, reference=reference,
                                               needs_reference=check.compare == "baseline")
            rows.append({
                "phase": self.name, "tick": tick, "at": at, "region": item.region, "policy": item.policy,
                "check": item.check, "status": verdict.status, "value": verdict.value,
                "threshold": verdict.threshold, "reference": verdict.reference,
                "comparison": check.fail_if.text if check.fail_if else None, "pending": verdict.pending,
                "reason": verdict.reason,
                "evidence": {"state": state_to_dict(self.states[item]), "query": self.evaluator.query_text(item),
                             "series": len(reading.series), "detail": reading.detail},
            })
        if rows:
            self.store.add_measurements(self.rollout_id, rows)

    def unclean(self) -> list[Item]:
        """Items whose latest verdict is not a clean pass (failed, inconclusive, pending, none)."""
        return [i for i, s in self.states.items() if not is_clean(s)]
