"""Verdicts from measurements: pure functions over numbers, no I/O, no clock.

A check yields ``pass``, ``fail`` or ``inconclusive`` with its evidence:

- ``fail_if`` fails when its comparison holds; with ``for: D`` only once it has held
  at every evaluation for at least D (until then the verdict is a *pending* pass);
- relative comparisons (``> +20%``) are applied to the change from a reference value
  (the baseline captured before the change);
- no data follows ``on_no_data``; a provider error is always inconclusive;
- several series need an explicit ``reduce``; ``any``/``all`` apply the comparison to
  each series, the others reduce the values first.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from typing import Literal

from .interfaces import Reading
from .model import Check
from .model.types import format_duration

Status = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    status: Status
    value: float | None
    threshold: float | None
    reference: float | None
    reason: str
    pending: bool = False
    """Breaching, but the ``for:`` hold has not elapsed yet."""


@dataclass(frozen=True)
class CheckState:
    """What the judge remembers of one check in one region between evaluations."""

    breach_since: float | None = None
    first_breach_at: float | None = None
    inconclusive_streak: int = 0
    evaluations: int = 0
    failures: int = 0
    inconclusives: int = 0
    last: Verdict | None = None


def reduce_values(values: list[float], how: str) -> float:
    if how == "max":
        return max(values)
    if how == "min":
        return min(values)
    if how == "sum":
        return math.fsum(values)
    if how == "avg":
        return math.fsum(values) / len(values)
    raise ValueError(f"unknown reduce {how!r}")


def baseline_value(points: list[float], stat: str) -> float | None:
    """One reference value from the samples of the pre-change window."""
    values = [v for v in points if not math.isnan(v)]
    if not values:
        return None
    if stat == "median":
        return statistics.median(values)
    if stat == "max":
        return max(values)
    if stat == "min":
        return min(values)
    return math.fsum(values) / len(values)


def _measure(check: Check, reading: Reading, reference: float | None) -> tuple[float | None, bool | None, str]:
    """(value shown, whether the failure condition holds, reason) — holds is None for no data."""
    values = [s.value for s in reading.series if not math.isnan(s.value)]
    if not values:
        return None, None, "no data"
    comparison = check.fail_if
    how = check.reduce
    if len(values) > 1 and how is None:
        raise _Inconclusive(f"the query returned {len(values)} series; add reduce: max|min|sum|avg|any|all "
                            f"(or aggregate in the query) so no series is silently picked")
    if how in ("any", "all"):
        holds = [comparison.holds(v, reference) for v in values]
        breached = [v for v, h in zip(values, holds) if h]
        worst = max(values, key=lambda v: comparison.subject(v, reference) * (1 if comparison.op in (">", ">=") else -1))
        verdict = any(holds) if how == "any" else all(holds)
        return (breached[0] if verdict and breached else worst), verdict, f"{len(breached)}/{len(values)} series breach"
    value = values[0] if len(values) == 1 else reduce_values(values, how)
    return value, comparison.holds(value, reference), ""


class _Inconclusive(Exception):
    pass


def _describe(check: Check, value: float, reference: float | None) -> str:
    comparison = check.fail_if
    if comparison.relative and reference is not None:
        change = comparison.subject(value, reference)
        unit = "%" if comparison.percent else ""
        return f"{_fmt(value)} is {change:+.1f}{unit} from baseline {_fmt(reference)} (fails if {comparison.text})"
    return f"{_fmt(value)} (fails if {comparison.text})"


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value != value or math.isinf(value):
        return str(value)
    return f"{value:.4g}"


def judge(check: Check, reading: Reading, *, at: float, state: CheckState, on_no_data: str,
          reference: float | None = None, needs_reference: bool = False) -> tuple[Verdict, CheckState]:
    """Evaluate one reading of one check; return the verdict and the updated state."""
    comparison = check.fail_if
    threshold = comparison.threshold(reference) if comparison is not None else None
    state = replace(state, evaluations=state.evaluations + 1)

    def inconclusive(reason: str, value: float | None = None) -> tuple[Verdict, CheckState]:
        verdict = Verdict("inconclusive", value, threshold, reference, reason)
        return verdict, replace(state, inconclusive_streak=state.inconclusive_streak + 1,
                                inconclusives=state.inconclusives + 1, last=verdict)

    if reading.error:
        return inconclusive(reading.error)
    if needs_reference and reference is None:
        return inconclusive("no baseline: the query had no data before the change")
    try:
        value, holds, note = _measure(check, reading, reference)
    except _Inconclusive as exc:
        return inconclusive(str(exc))
    if holds is None:
        no_data = check.on_no_data or on_no_data
        if no_data == "inconclusive":
            return inconclusive("no data")
        status: Status = "fail" if no_data == "fail" else "pass"
        verdict = Verdict(status, None, threshold, reference, f"no data (on_no_data: {no_data})")
        return verdict, replace(state, inconclusive_streak=0, failures=state.failures + (status == "fail"),
                                first_breach_at=state.first_breach_at or (at if status == "fail" else None),
                                last=verdict)
    described = _describe(check, value, reference) + (f"; {note}" if note else "")
    if not holds:
        verdict = Verdict("pass", value, threshold, reference, described)
        return verdict, replace(state, breach_since=None, inconclusive_streak=0, last=verdict)
    since = state.breach_since if state.breach_since is not None else at
    held = at - since
    first = state.first_breach_at if state.first_breach_at is not None else at
    if held + 1e-9 >= check.for_:
        verdict = Verdict("fail", value, threshold, reference,
                          described + (f"; held {format_duration(held)}" if check.for_ else ""))
        return verdict, replace(state, breach_since=since, first_breach_at=first, inconclusive_streak=0,
                                failures=state.failures + 1, last=verdict)
    verdict = Verdict("pass", value, threshold, reference,
                      f"{described}; breaching for {format_duration(held)} of {format_duration(check.for_)}",
                      pending=True)
    return verdict, replace(state, breach_since=since, first_breach_at=first, inconclusive_streak=0, last=verdict)


def is_clean(state: CheckState) -> bool:
    """Evidence a wave may be promoted on: evaluated, and the latest verdict a pass
    that is not holding a breach. (A failure ends the bake before this is asked.)"""
    return state.last is not None and state.last.status == "pass" and not state.last.pending
