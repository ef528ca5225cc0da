"""One policy test case, evaluated the way a bake evaluates it.

Everything that decides a verdict is the one judgement every tool calls,
``guardrail.judging.evaluate``: ``judge_check`` at each tick, the baseline window and
reference before the deploy, the control window. What differs is only where readings come from: the test's
inputs, through the sim's PromQL evaluator, instead of a source plugin.

Each check in each region runs on its own: it stops at its first failure (the time a
rollout would have been stopped, had that check been the first to fail) or when its
inconclusive evidence reaches the policy's ``inconclusive_limit`` (where a rollout
would have halted), so a test asserts every check, not only the quickest. A warning
stops nothing, as in a bake: a check that warned and never failed is a ``warn``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from guardrail.judging.evaluate import (DEFAULT_BASELINE_WINDOW, NO_CONTROL, ControlEvidence, baseline_reference, baseline_window,
                                        control_window, judge_check)
from guardrail.judging.judge import CheckState
from guardrail.language.model import Check, Policy
from guardrail import Probe, Reading, Series, Source, render_value
from guardrail_plugins.policytest.model import Case, PolicyTest, series_labels
from guardrail_plugins.policytest.notation import expand


@dataclass(frozen=True)
class Tick:
    """One evaluation of one check in one region: what a measurement row holds."""

    at: float
    status: str
    pending: bool
    value: float | None
    threshold: float | None
    reason: str
    held: float | None = None
    """How long the breach has held, while one does."""


@dataclass
class Outcome:
    """The verdict of one check in one region over the whole test."""

    region: str
    check: str
    verdict: str
    at: float | None = None
    """The first failure; for ``inconclusive``, when the evidence ran out."""
    reference: float | None = None
    ticks: list[Tick] = field(default_factory=list)
    warned_at: float | None = None
    """The first evaluation that warned (``warn_if``, ``mode: warn``); the verdict is
    ``warn`` when the check warned and never failed."""


class InputSource(Source):
    """Readings from a test's inputs: queries over the raw series, or a check's own values."""

    blocking_io = False

    def __init__(self, store: Any, values: dict[tuple[str, str], list[float | None]], step: float):
        self.store, self.values, self.step = store, values, step

    def measure(self, probe: Probe, at: float) -> Reading:
        from guardrail_plugins.sim.promql import PromQLError, evaluate

        given = self.values.get((probe.region, probe.check))
        if given is not None:
            index = math.floor(at / self.step + 1e-9)
            return Reading.of(given[index] if 0 <= index < len(given) else None)
        if "error" in probe.params:
            return Reading.failed(probe.params["error"])
        query = probe.params.get("query")
        if not isinstance(query, str):
            return Reading.failed("the check has no query: give its values in the test")
        try:
            result = evaluate(query, self.store, at)
        except PromQLError as exc:
            return Reading.failed(f"query {query!r} failed in the offline evaluator: {exc} "
                                  "(give the check's values in the test instead)", query=query)
        if isinstance(result, float):
            return Reading(series=() if math.isnan(result) else (Series({}, result),))
        return Reading(series=tuple(Series(dict(labels), v) for labels, v in result if not math.isnan(v)))


def build_source(test: PolicyTest, case: Case) -> InputSource:
    from guardrail_plugins.sim.promql import StaticStore

    step = case.step or test.step
    series = []
    for region, given in case.regions.items():
        for key, text in given.series.items():
            labels = {"region": region, **series_labels(key)}
            series.append((labels, [(i * step, v) for i, v in enumerate(expand(text)) if v is not None]))
    values = {(region, name): expand(text) for region, given in case.regions.items() for name, text in given.values.items()}
    return InputSource(StaticStore(series), values, step)


def end_of_inputs(test: PolicyTest, case: Case) -> float:
    step = case.step or test.step
    lengths = [len(expand(t)) for g in case.regions.values() for t in (*g.series.values(), *g.values.values())]
    return (max(lengths, default=1) - 1) * step


def region_vars(test: PolicyTest, case: Case, region: str) -> dict[str, Any]:
    """As ``Rollout.region_vars``: shared vars, the region's, then the built-ins."""
    return {**test.vars, **case.regions[region].vars, "region": region, "service": test.service,
            "version": "new", "previous": "old"}


def run_case(test: PolicyTest, case: Case, policy: Policy) -> dict[tuple[str, str], Outcome]:
    """Every check of ``policy`` in every deployed region of ``case``: (region, check) -> Outcome."""
    from guardrail_plugins.prometheus import escape_promql

    source = build_source(test, case)
    start = case.deployed_at
    until = case.until if case.until is not None else end_of_inputs(test, case)
    interval = policy.interval
    deployed = [r for r in case.regions if r not in case.control]
    probes = {(r, c.name): _probe(c, r, region_vars(test, case, r), escape_promql)
              for r in case.regions for c in policy.checks}
    outcomes: dict[tuple[str, str], Outcome] = {}
    states: dict[tuple[str, str], CheckState] = {}
    for region in deployed:
        for check in policy.checks:
            key = (region, check.name)
            outcomes[key] = Outcome(region, check.name, "pass", reference=_baseline(
                check, source, probes[key], start, until - start, interval))
            states[key] = CheckState()
    live = list(outcomes)
    checks = {c.name: c for c in policy.checks}
    k = 0
    while live and start + k * interval <= until + 1e-9:
        at = start + k * interval
        for key in list(live):
            check = checks[key[1]]
            outcome, state = outcomes[key], states[key]
            if check.compare == "control":
                evidence = _control_evidence(check, source, probes, key, case.control, start, at, interval,
                                             bake=until - start)
                verdict, state, _ = judge_check(check, at=at, state=state, on_no_data=policy.on_no_data,
                                                control=evidence)
            else:
                verdict, state, _ = judge_check(check, at=at, state=state, on_no_data=policy.on_no_data,
                                                reading=source.measure(probes[key], at), reference=outcome.reference)
            states[key] = state
            outcome.ticks.append(Tick(at, verdict.status, verdict.pending, verdict.value, verdict.threshold,
                                      verdict.reason, None if state.breach_since is None else at - state.breach_since))
            if verdict.status == "warn" and outcome.warned_at is None:
                outcome.warned_at = at
            if verdict.status == "fail":
                outcome.verdict, outcome.at = "fail", at
            elif state.inconclusive_streak >= policy.inconclusive_limit:
                outcome.verdict, outcome.at = "inconclusive", at
            if outcome.at is not None:
                live.remove(key)
        k += 1
    for outcome in outcomes.values():
        if outcome.verdict == "pass" and outcome.warned_at is not None:
            outcome.verdict = "warn"
    return outcomes


def _probe(check: Check, region: str, variables: dict[str, Any], escape) -> Probe:
    """The check's params with the region's variables filled in, escaped as the
    ``prometheus`` source escapes them; a missing variable becomes a reading error."""
    try:
        return Probe(check.name, region, render_value(check.params, variables, escape))
    except KeyError as exc:
        return Probe(check.name, region, {"error": f"template variable {{{{{exc.args[0]}}}}} is not defined for "
                                                   f"region {region}: give it under vars"})


def _baseline(check: Check, source: InputSource, probe: Probe, start: float, bake: float,
              interval: float) -> float | None:
    if check.compare != "baseline":
        return None
    span = baseline_window(check, bake)
    return baseline_reference(check, source.measure_range(probe, start - span, start, interval))[0]


def _control_evidence(check: Check, source: InputSource, probes: dict, key: tuple[str, str], controls: list[str],
                      start: float, at: float, interval: float, bake: float) -> ControlEvidence:
    """As ``guardrail.rollout.control.ControlChecks.evidence``, over the test's inputs."""
    window = control_window(check, interval, start, at)
    begin, samples = window
    if not controls:
        if check.on_no_control != "baseline":
            return ControlEvidence(window, skipped=NO_CONTROL)
        span = bake or DEFAULT_BASELINE_WINDOW
        return ControlEvidence(window, source.measure_range(probes[key], begin, at, interval)
                               if samples >= check.min_samples else None, skipped=NO_CONTROL,
                               baseline=source.measure_range(probes[key], start - span, start, interval))
    if samples < check.min_samples:
        return ControlEvidence(window)
    return ControlEvidence(window, source.measure_range(probes[key], begin, at, interval),
                           [(region, source.measure_range(probes[(region, key[1])], begin, at, interval))
                            for region in controls])
