"""The one judgement of a check, called by every tool that judges.

A rollout's ticks, preflight and recovery, ``guardrail check``, ``guardrail test`` and
``guardrail backtest`` differ only in where their readings come from (sources at
tick times, a test's inputs, history). Everything that turns readings into a verdict
is here, so the tools cannot disagree:

- ``baseline_window`` and ``baseline_reference``: which window before the change a
  ``compare: baseline`` check is measured over, and the one reference value it gives;
- ``window_values``: a window's samples as the check itself reads them, one value per
  step reduced with the check's ``reduce`` (``sum`` of three series is their sum, in
  the baseline as in the live value; comparing a live sum with a baseline mean would
  make every relative comparison wrong by the number of series);
- ``control_window`` and ``ControlEvidence``: the canary-vs-control window at a tick;
- ``staleness``: whether a reading rests on fresh samples (``max_age``, and
  ``min_window_coverage`` for window functions); a stale reading is no data;
- ``judge_check``: one evaluation, with the ``for:`` hold carried in ``CheckState``;
- ``judge_once``: the question "does it hold right now" (preflight, ``check``), where
  ``for:`` does not apply and the reason says how long a bake would wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from guardrail.judging.judge import CheckState, Verdict, baseline_value, explain, judge, judge_control, reduce_values
from guardrail.judging.statistics import compare_to_control
from guardrail.language.model import Check
from guardrail.plugin.readings import RangeReading, Reading
from guardrail.text import format_duration

DEFAULT_BASELINE_WINDOW = 1800.0
"""The baseline window of a check that names none, in a wave without a bake."""

NO_CONTROL = "no control region left: every region of the plan runs the new version"

DEFAULT_SAMPLE_INTERVAL = 60.0
"""Seconds between samples when a source reports sample times but no interval
(Prometheus's default scrape interval)."""
DEFAULT_MIN_WINDOW_COVERAGE = 0.5
"""The share of a range window that must hold samples, for a check that names none:
past half a window missing, a window function's value is mostly extrapolation."""


def max_age(check: Check, reading: Reading) -> float:
    """How old a reading's newest input sample may be: the check's ``max_age``, else
    twice the sample interval the source reports (one missed scrape is tolerated, two
    are not)."""
    if check.max_age:
        return check.max_age
    return 2.0 * (reading.sample_interval or DEFAULT_SAMPLE_INTERVAL)


def staleness(check: Check, reading: Reading, at: float) -> str | None:
    """Why ``reading`` is not fresh evidence at ``at``, or None when it is (or when the
    source cannot tell: a live probe measures now).

    Stale: an input of the query has no sample at all, or its newest sample is older
    than ``max_age`` (a frozen gauge served from Prometheus's 5-minute lookback); or a
    window function's window holds samples for less than ``min_window_coverage`` of
    its length (``increase(x[15m])`` over a 10-minute gap still returns a value, from
    the 5 minutes that have samples)."""
    if reading.error or not reading.series:
        return None
    newest = reading.newest_sample
    if newest is not None:
        if math.isinf(newest) and newest < 0:
            return "stale: an input of the query has no samples"
        age, limit = at - newest, max_age(check, reading)
        if age > limit + 1e-6:
            return f"stale: the newest sample is {format_duration(age)} old (max_age {format_duration(limit)})"
    coverage = reading.window_coverage
    if coverage is not None:
        need = check.min_window_coverage or DEFAULT_MIN_WINDOW_COVERAGE
        if coverage + 1e-9 < need:
            return (f"stale: samples cover {coverage:.0%} of the query's window "
                    f"(min_window_coverage {need:.0%})")
    return None


def window_values(reading: RangeReading, reduce: str | None) -> list[float]:
    """One value per step of a window, as the live check reads it: reduced across series
    with ``max``/``min``/``sum``/``avg``; ``any``/``all`` compare each series on its own,
    so their window is the mean of the series at each step."""
    if reduce in ("max", "min", "sum", "avg") and reading.samples:
        return [reduce_values(list(values), reduce) for _, values in reading.samples]
    return [value for _, value in reading.points]


def baseline_window(check: Check, bake: float | None) -> float:
    """How far before the change a ``compare: baseline`` check looks: its own
    ``baseline.window``, else the wave's bake, else 30 minutes."""
    own = check.baseline.window if check.baseline and check.baseline.window else None
    return own or bake or DEFAULT_BASELINE_WINDOW


def baseline_reference(check: Check, reading: RangeReading) -> tuple[float | None, dict[str, Any]]:
    """The reference value a ``compare: baseline`` check compares with, from the window
    before the change, and the evidence kept about it."""
    stat = check.baseline.stat if check.baseline else "mean"
    if reading.error:
        return None, {"samples": 0, "stat": stat, "error": reading.error}
    values = window_values(reading, check.reduce)
    window = [reading.points[0][0], reading.points[-1][0]] if reading.points else None
    return baseline_value(values, stat), {"samples": len(values), "stat": stat, "error": None, "window": window}


def control_window(check: Check, interval: float, start: float, at: float) -> tuple[float, int]:
    """(window start, samples it holds) of a control comparison at ``at``: the last
    ``min_samples`` steps, never reaching back before the phase started, so samples from
    before the change cannot dilute the deployed side."""
    begin = max(at - interval * check.min_samples, start)
    return begin, int((at - begin) / interval + 1e-9) + 1


def describe_control(check: Check) -> str:
    """A control comparison in words, as stored with each measurement."""
    effect = f", effect {check.effect_size:g}" if check.effect_size is not None else ""
    return f"control: {check.direction}, confidence {check.confidence:g}{effect}"


def comparison_text(check: Check) -> str | None:
    """What a check compares with, as stored with each measurement and shown in reports."""
    if check.compare == "control":
        return describe_control(check)
    return check.fail_if.text if check.fail_if else None


@dataclass(frozen=True)
class ControlEvidence:
    """What a ``compare: control`` evaluation rests on at one tick."""

    window: tuple[float, int]
    """(start, samples) from ``control_window``."""
    deployed: RangeReading | None = None
    """The deployed region's window; None while the window still fills."""
    controls: list[tuple[str, RangeReading]] = field(default_factory=list)
    """Each control region's window."""
    skipped: str | None = None
    """Why there is no control to compare with (no control region left)."""
    baseline: RangeReading | None = None
    """With no control left: the region's own window before the change, which
    ``on_no_control: baseline`` compares the deployed window with."""


def judge_check(check: Check, *, at: float, state: CheckState, on_no_data: str, reading: Reading | None = None,
                reference: float | None = None,
                control: ControlEvidence | None = None) -> tuple[Verdict, CheckState, dict[str, Any]]:
    """One evaluation of one check in one region: the verdict, the judge's memory after it
    and the evidence to keep. ``reading`` for absolute and baseline checks (with the
    baseline's ``reference``), ``control`` for ``compare: control``.

    The warning tier: a check marked ``mode: warn`` warns where it would fail (``warn``),
    and its breach held by ``for:`` or its inconclusive readings never hold or halt a
    bake (no ``pending``, no inconclusive streak); a check with ``warn_if`` beside
    ``fail_if`` is judged on both, each with its own ``for:`` memory (``CheckState.warning``):
    the failure decides, and a pass whose warning condition held is a ``warn``."""
    verdict, after, detail = _judge_tier(check, at, state, on_no_data, reading, reference, control)
    if check.advisory:
        return (*as_warning(verdict, after), detail)
    if check.warn_if is None:
        return verdict, after, detail
    warned, warning, _ = _judge_tier(warning_tier(check), at, state.warning or CheckState(), on_no_data, reading,
                                     reference, control)
    if verdict.status == "pass" and warned.status == "fail":
        reason = warned.reason + (f"; {verdict.reason}" if verdict.pending else "")
        verdict = Verdict("warn", warned.value, warned.threshold, warned.reference, reason, pending=verdict.pending)
    elif verdict.status == "pass" and not verdict.reason and warned.reason:
        verdict = replace(verdict, reason=warned.reason)  # the warning's hold filling: said, never pending
    return verdict, replace(after, last=verdict, warning=warning), detail


def as_warning(verdict: Verdict, state: CheckState) -> tuple[Verdict, CheckState]:
    """The verdict of a warn-only check: a failure is a ``warn``; a breach held by ``for:``
    is a pass that says so (it holds no bake); an inconclusive reading does not count
    toward ``inconclusive_limit`` (it halts no bake)."""
    if verdict.status == "fail":
        verdict = Verdict("warn", verdict.value, verdict.threshold, verdict.reference, verdict.reason,
                          skipped=verdict.skipped)
    elif verdict.pending:
        verdict = replace(verdict, pending=False)
    elif verdict.status != "inconclusive":
        return verdict, state
    return verdict, replace(state, inconclusive_streak=0, last=verdict)


_TIERS: dict[int, tuple[Check, Check]] = {}


def warning_tier(check: Check) -> Check:
    """The check's ``warn_if`` as a warn-only check of its own (made once per check)."""
    known = _TIERS.get(id(check))
    if known is None or known[0] is not check:
        if len(_TIERS) > 4096:  # checks of plans long gone (a worker loads many)
            _TIERS.clear()
        known = _TIERS[id(check)] = (check, check.model_copy(update={"fail_if": check.warn_if, "warn_if": None,
                                                                     "mode": "warn"}))
    return known[1]


def warning_since(state: CheckState) -> float | None:
    """Since when the warning tier's condition holds (kept with a measurement, for a resume)."""
    return state.warning.breach_since if state.warning is not None else None


def _judge_tier(check: Check, at: float, state: CheckState, on_no_data: str, reading: Reading | None,
                reference: float | None,
                control: ControlEvidence | None) -> tuple[Verdict, CheckState, dict[str, Any]]:
    if check.compare == "control":
        return _judge_control(check, control, at, state, on_no_data)
    assert reading is not None, "an absolute or baseline check is judged on a reading"
    stale = staleness(check, reading, at)
    verdict, state = judge(check, reading, at=at, state=state, on_no_data=on_no_data, reference=reference,
                           needs_reference=check.compare == "baseline", stale=stale)
    return verdict, state, ({"stale": stale} if stale else {})


def _judge_control(check: Check, evidence: ControlEvidence | None, at: float, state: CheckState,
                   on_no_data: str) -> tuple[Verdict, CheckState, dict[str, Any]]:
    against = "control regions"
    if evidence is None or evidence.skipped is not None:
        why = evidence.skipped if evidence is not None and evidence.skipped else NO_CONTROL
        if check.on_no_control == "skip":
            verdict, state = judge_control(check, None, at=at, state=state, on_no_data=on_no_data, skipped=why)
            return verdict, state, {"controls": [], "skipped": why, "judged_against": "nothing (on_no_control: skip)"}
        if check.on_no_control == "inconclusive" or evidence is None or evidence.baseline is None:
            what = "" if check.on_no_control == "inconclusive" else "; no window before the change to compare with"
            verdict, state = judge_control(check, None, at=at, state=state, on_no_data=on_no_data,
                                           error=f"{why}{what} (on_no_control: {check.on_no_control})")
            return verdict, state, {"controls": [], "judged_against": f"nothing (on_no_control: "
                                                                      f"{check.on_no_control})"}
        against = "baseline"
        evidence = ControlEvidence(evidence.window, evidence.deployed, [("before the change", evidence.baseline)])
    begin, samples = evidence.window
    judged = ("the region's own window before the change (on_no_control: baseline)" if against == "baseline"
              else "control regions " + ", ".join(r for r, _ in evidence.controls))
    detail: dict[str, Any] = {"controls": [r for r, _ in evidence.controls], "window": [begin, at],
                              "judged_against": judged}
    if evidence.deployed is None:
        waiting = f"collecting samples: {samples} of {check.min_samples} since the phase started"
        verdict, state = judge_control(check, None, at=at, state=state, on_no_data=on_no_data, waiting=waiting)
        return verdict, state, detail
    ours, theirs = evidence.deployed, evidence.controls
    error = ours.error or next((r.error for _, r in theirs if r.error), None)
    if error:
        verdict, state = judge_control(check, None, at=at, state=state, on_no_data=on_no_data, error=error)
        return verdict, state, detail
    comparison = compare_to_control(window_values(ours, check.reduce),
                                    [v for _, r in theirs for v in window_values(r, check.reduce)],
                                    direction=check.direction, confidence=check.confidence,
                                    effect_size=check.effect_size, min_samples=check.min_samples)
    if against == "baseline":
        comparison = replace(comparison, reason=f"{comparison.reason}; against {judged}")
    verdict, state = judge_control(check, comparison, at=at, state=state, on_no_data=on_no_data)
    detail.update(p_value=comparison.p_value, ratio=comparison.ratio, deployed_samples=comparison.deployed_samples,
                  control_samples=comparison.control_samples,
                  control_samples_by_region={region: len(r.points) for region, r in theirs})
    return verdict, state, detail


def judge_once(check: Check, *, at: float, on_no_data: str, reading: Reading | None = None,
               reference: float | None = None,
               control: ControlEvidence | None = None) -> tuple[Verdict, dict[str, Any]]:
    """Does the check's failure condition hold right now? ``for:`` does not apply (a
    failing verdict says how long a bake would wait before failing)."""
    held = check.model_copy(update={"for_": 0.0}) if check.for_ else check
    verdict, _, detail = judge_check(held, at=at, state=CheckState(), on_no_data=on_no_data, reading=reading,
                                     reference=reference, control=control)
    if verdict.status in ("fail", "warn") and check.for_:
        does = "fails" if verdict.status == "fail" else "warns"
        verdict = Verdict(verdict.status, verdict.value, verdict.threshold, verdict.reference,
                          f"{explain(check, verdict)}; holds now (a bake {does} once it holds for "
                          f"{format_duration(check.for_)})", skipped=verdict.skipped)
    return verdict, detail
