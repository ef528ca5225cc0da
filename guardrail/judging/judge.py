"""Verdicts from measurements: pure functions over numbers, no I/O, no clock.

A check yields ``pass``, ``fail`` or ``inconclusive`` with its evidence:

- ``fail_if`` fails when its comparison holds; with ``for: D`` only once it has held
  at every evaluation for at least D (until then the verdict is a *pending* pass);
- relative comparisons (``> +20%``) are applied to the change from a reference value
  (the baseline captured before the change);
- no data follows ``on_no_data``; a provider error is always inconclusive;
- several series need an explicit ``reduce``; ``any``/``all`` apply the comparison to
  each series, the others reduce the values first;
- ``compare: control`` verdicts (``judge_control``) come from ``guardrail.judging.statistics``
  and are held by ``for:`` in the same way.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal

from guardrail.plugin.readings import Reading
from guardrail.language.model import Check
from guardrail.text import format_duration
from guardrail.judging.statistics import ControlComparison, allowed_ratios
from guardrail.text import delta, hold_text, number

Status = Literal["pass", "fail", "inconclusive", "warn"]
"""``warn``: a warning condition held for its ``for:`` (``warn_if``, or ``fail_if`` of a
check marked ``mode: warn``); evidence a wave may be promoted on, told but never failing."""


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    value: float | None
    threshold: float | None
    reference: float | None
    reason: str
    pending: bool = False
    """Breaching, but the ``for:`` hold has not elapsed yet (or a control window still fills)."""
    skipped: bool = False
    """Not evaluated, for the reason given: a control comparison with no control region left."""


@dataclass(frozen=True, slots=True)
class CheckState:
    """What the judge remembers of one check in one region between evaluations."""

    breach_since: float | None = None
    first_breach_at: float | None = None
    inconclusive_streak: int = 0
    evaluations: int = 0
    failures: int = 0
    inconclusives: int = 0
    last: Verdict | None = None
    warning: CheckState | None = None
    """The memory of the check's warning tier (``warn_if``), kept beside the failure's."""


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
    """(value shown, whether the failure condition holds, reason) — holds is None for no data.

    A series that reads NaN or an infinity is no data for that series. Such a series
    never makes a breaching set pass: the verdict stands only when it does not depend
    on it (a breach among the others fails; ``all`` fails to hold once one finite series
    does not breach); otherwise the reading is no data, and ``on_no_data`` decides."""
    values = [s.value for s in reading.series if math.isfinite(s.value)]
    unknown = len(reading.series) - len(values)
    if not values:
        return None, None, "no data" if not unknown else f"no data: {unknown} series read NaN or infinity"
    comparison = check.fail_if
    how = check.reduce
    if len(values) + unknown > 1 and how is None:
        raise _Inconclusive(f"the query returned {len(values) + unknown} series; add reduce: max|min|sum|avg|any|all "
                            f"(or aggregate in the query) so no series is silently picked")
    if how in ("any", "all"):
        holds = [comparison.holds(v, reference) for v in values]
        breached = [v for v, h in zip(values, holds) if h]
        worst = max(values, key=lambda v: comparison.subject(v, reference) * (1 if comparison.op in (">", ">=") else -1))
        verdict = any(holds) if how == "any" else all(holds)
        if unknown and (verdict if how == "all" else not verdict):
            return None, None, f"no data: {unknown} of {len(values) + unknown} series read NaN or infinity"
        return (breached[0] if verdict and breached else worst), verdict, f"{len(breached)}/{len(values)} series breach"
    value = values[0] if len(values) == 1 else reduce_values(values, how)
    holds = comparison.holds(value, reference)
    if unknown and not holds:
        return None, None, f"no data: {unknown} of {len(values) + unknown} series read NaN or infinity"
    return value, holds, ""


class _Inconclusive(Exception):
    pass


def _describe(check: Check, value: float, reference: float | None) -> str:
    comparison = check.fail_if
    condition = f"{'warns' if check.advisory else 'fails'} if {comparison.text}"
    if comparison.relative and reference is not None:
        change = delta(comparison.subject(value, reference), percent=comparison.percent)
        return f"{number(value)} is {change} from baseline {number(reference)} ({condition})"
    return f"{number(value)} ({condition})"



def judge(check: Check, reading: Reading, *, at: float, state: CheckState, on_no_data: str,
          reference: float | None = None, needs_reference: bool = False,
          stale: str | None = None) -> tuple[Verdict, CheckState]:
    """Evaluate one reading of one check; return the verdict and the updated state.
    ``stale``: why the reading does not rest on fresh samples (it is then no data).

    This runs once per check, region and tick (hundreds of thousands of times in a
    long simulated bake), so states are built directly rather than with ``replace``.
    """
    comparison = check.fail_if
    threshold = comparison.threshold(reference) if comparison is not None else None
    if reading.error:
        return _inconclusive(state, threshold, reference, reading.error)
    if needs_reference and reference is None:
        return _inconclusive(state, threshold, reference, "no baseline: the query had no data before the change")
    if stale is not None:
        # No data, as on_no_data says; but samples that are late are not a source that
        # cannot answer: they do not count toward inconclusive_limit. They cover no bake
        # time, so the bake extends while they last and halts when its extension runs out.
        return _no_data(check, on_no_data, state, at, threshold, reference, stale, streak=False)
    try:
        value, holds, note = _measure(check, reading, reference)
    except _Inconclusive as exc:
        return _inconclusive(state, threshold, reference, str(exc))
    if holds is None:
        return _no_data(check, on_no_data, state, at, threshold, reference, note)
    if not holds:
        return _settle(check, False, value, threshold, reference, note, at, state)
    return _settle(check, True, value, threshold, reference,
                   _describe(check, value, reference) + (f"; {note}" if note else ""), at, state)


def _inconclusive(state: CheckState, threshold: float | None, reference: float | None,
                  reason: str, streak: bool = True) -> tuple[Verdict, CheckState]:
    verdict = Verdict("inconclusive", None, threshold, reference, reason)
    return verdict, CheckState(state.breach_since, state.first_breach_at, state.inconclusive_streak + streak,
                               state.evaluations + 1, state.failures, state.inconclusives + 1, verdict)


def _no_data(check: Check, on_no_data: str, state: CheckState, at: float, threshold: float | None,
             reference: float | None, what: str, streak: bool = True) -> tuple[Verdict, CheckState]:
    """No data follows the check's (or the policy's) explicit ``on_no_data``."""
    no_data = check.on_no_data or on_no_data
    if no_data == "inconclusive":
        return _inconclusive(state, threshold, reference, what, streak)
    failed = no_data == "fail"
    verdict = Verdict("fail" if failed else "pass", None, threshold, reference, f"{what} (on_no_data: {no_data})")
    first = state.first_breach_at if state.first_breach_at is not None or not failed else at
    return verdict, CheckState(state.breach_since, first, 0 if streak else state.inconclusive_streak,
                               state.evaluations + 1, state.failures + failed, state.inconclusives, verdict)


def _settle(check: Check, holds: bool, value: float, threshold: float | None, reference: float | None,
            reason: str, at: float, state: CheckState) -> tuple[Verdict, CheckState]:
    """A measured value: pass, or a breach that fails once it has held for ``for:``."""
    evaluations = state.evaluations + 1
    if not holds:
        verdict = Verdict("pass", value, threshold, reference, reason)
        return verdict, CheckState(None, state.first_breach_at, 0, evaluations, state.failures,
                                   state.inconclusives, verdict)
    since = state.breach_since if state.breach_since is not None else at
    held = at - since
    first = state.first_breach_at if state.first_breach_at is not None else at
    if held + 1e-9 >= check.for_:
        verdict = Verdict("fail", value, threshold, reference,
                          reason + (f"; held {format_duration(held)}" if check.for_ else ""))
        return verdict, CheckState(since, first, 0, evaluations, state.failures + 1, state.inconclusives, verdict)
    verdict = Verdict("pass", value, threshold, reference,
                      f"{reason}; {hold_text(held, check.for_)}", pending=True)
    return verdict, CheckState(since, first, 0, evaluations, state.failures, state.inconclusives, verdict)


def explain(check: Check, verdict: Verdict) -> str:
    """The reason of a verdict, for people; a clean pass stores none and gets one here."""
    if verdict.reason or verdict.value is None or check.fail_if is None:
        return verdict.reason
    return _describe(check, verdict.value, verdict.reference)


def is_clean(state: CheckState) -> bool:
    """Evidence a wave may be promoted on: evaluated, and the latest verdict a pass
    that is not holding a breach, or a warning. (A failure ends the bake before this is asked.)"""
    return state.last is not None and state.last.status in ("pass", "warn") and not state.last.pending


def covers(verdict: Verdict | None) -> bool:
    """Whether an evaluation counts as covered bake time: a pass on a fresh, measured
    value. A pass on no data (``on_no_data: pass``, a stale reading), a skipped check or
    a control window still filling is not evidence. A breach held by ``for:`` is (it was
    measured and has not failed; the bake cannot end while it holds anyway), and so is a
    warning: the value was measured."""
    return (verdict is not None and verdict.status in ("pass", "warn") and not verdict.skipped
            and verdict.value is not None)


def judge_control(check: Check, comparison: ControlComparison | None, *, at: float, state: CheckState,
                  on_no_data: str, error: str | None = None, waiting: str | None = None,
                  skipped: str | None = None) -> tuple[Verdict, CheckState]:
    """Evaluate one canary-vs-control comparison (see ``guardrail.rollout.control``).

    ``skipped``: no control exists (a pass that says why); ``waiting``: the window
    still fills (a pending pass); ``error``: a side could not be measured. Otherwise
    the comparison's verdict, where the value is the deployed mean, the reference the
    control mean and the threshold the mean the allowed effect reaches; a ``fail_if``
    given with ``compare: control`` must also hold (against the control mean) to fail."""
    if skipped is not None or waiting is not None:
        verdict = Verdict("pass", None, None, None, f"skipped: {skipped}" if skipped else waiting,
                          pending=waiting is not None and skipped is None, skipped=skipped is not None)
        return verdict, CheckState(None, state.first_breach_at, 0, state.evaluations + 1, state.failures,
                                   state.inconclusives, verdict)
    reference = comparison.control_mean if comparison is not None else None
    threshold = None
    if reference is not None and check.direction != "either":
        low, high = allowed_ratios(check.effect_size)
        threshold = reference * (high if check.direction == "increase" else low)
    if error is not None or comparison is None:
        return _inconclusive(state, threshold, reference, error or "no comparison")
    if comparison.deployed_samples == 0:
        return _no_data(check, on_no_data, state, at, threshold, reference,
                        "no data in the deployed region over the comparison window")
    if comparison.status == "inconclusive":
        return _inconclusive(state, threshold, reference, comparison.reason)
    value = comparison.deployed_mean
    holds = comparison.status == "fail" and (check.fail_if is None or check.fail_if.holds(value, reference))
    reason = comparison.reason if check.fail_if is None else (
        f"{comparison.reason}; {'warns' if check.advisory else 'fails'} if {check.fail_if.text}")
    return _settle(check, holds, value, threshold, reference, reason, at, state)
