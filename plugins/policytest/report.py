"""Expected against got, and a diff a person can act on.

A mismatch names the file, line and column of the expectation (or of the region, for
a check that was expected to pass by not being listed), says what was expected and
what happened, and shows the check's evaluations around the first divergence: the
time, the value the query returned, the threshold, the verdict and the judge's
reason, so the reader sees whether the input, the query or the threshold is off.
"""

from __future__ import annotations

from dataclasses import dataclass

from guardrail import Document, format_duration
from guardrail_plugins.policytest.model import Case, Expectation
from guardrail_plugins.policytest.runner import Outcome, Tick

CONTEXT = 3
"""Evaluations shown before and after the first divergence."""


@dataclass
class Mismatch:
    file: str
    line: int
    column: int
    case: str
    region: str
    check: str
    expected: Expectation
    outcome: Outcome
    deployed_at: float

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def render(self) -> str:
        got = Expectation.model_construct(verdict=self.outcome.verdict,
                                          first_failure=self.outcome.at if self.outcome.verdict == "fail" else None,
                                          first_warning=self.outcome.warned_at)
        lines = [f"{self.location}: {self.case!r}: {self.region}/{self.check}",
                 f"  expected: {self._describe(self.expected)}",
                 f"  got:      {self._describe(got, inconclusive_at=self.outcome.at)}"]
        focus = divergence(self.expected, self.outcome)
        if self.outcome.reference is not None:
            lines.append(f"  baseline: {_number(self.outcome.reference)} (the window before the deploy)")
        if self.outcome.ticks:
            lines.append(f"  evaluations around {_time(focus)}, the first divergence:")
            lines += ["    " + row for row in _table(self.outcome.ticks, focus)]
        return "\n".join(lines)

    def _describe(self, e: Expectation, inconclusive_at: float | None = None) -> str:
        if e.verdict == "fail" and e.first_failure is not None:
            return f"fail, first failure at {self._when(e.first_failure)}"
        if e.verdict == "warn" and e.first_warning is not None:
            return f"warn, first warning at {self._when(e.first_warning)}"
        if e.verdict == "inconclusive" and inconclusive_at is not None:
            return f"inconclusive (evidence ran out at {self._when(inconclusive_at)})"
        return e.verdict

    def _when(self, at: float) -> str:
        after = at - self.deployed_at
        relation = f"{format_duration(after)} after the deploy" if after >= 0 else f"{format_duration(-after)} before"
        return f"{_time(at)} ({relation})"


def matches(expected: Expectation, outcome: Outcome) -> bool:
    if expected.verdict != outcome.verdict:
        return False
    if expected.first_warning is not None and (outcome.warned_at is None
                                               or abs(expected.first_warning - outcome.warned_at) > 1e-6):
        return False
    return expected.first_failure is None or abs(expected.first_failure - (outcome.at or 0.0)) < 1e-6


def warnings(case: Case, outcomes: dict[tuple[str, str], Outcome]) -> list[str]:
    """Each check of a case that warned, as a sentence: told apart from the assertions."""
    return [f"{case.name!r}: {region}/{check} warned at {_time(o.warned_at)}"
            + (", then failed" if o.verdict == "fail" else "")
            for (region, check), o in outcomes.items() if o.warned_at is not None]


def divergence(expected: Expectation, outcome: Outcome) -> float:
    """The first time expected and got part ways (for the context shown)."""
    end = outcome.ticks[-1].at if outcome.ticks else 0.0
    times = [t for t in (expected.first_failure, expected.first_warning, outcome.at, outcome.warned_at)
             if t is not None]
    if expected.verdict == "pass":
        return outcome.at if outcome.at is not None else end
    return min(times) if times else end


def compare(doc: Document, index: int, case: Case, outcomes: dict[tuple[str, str], Outcome]) -> tuple[int, list[Mismatch]]:
    """(assertions made, mismatches) of one case: listed expectations, and a pass for
    every check that is not listed."""
    mismatches, count = [], 0
    at = ("tests", index)
    for (region, check), outcome in outcomes.items():
        listed = case.expect.get(region, {}).get(check)
        expected = listed or Expectation(verdict="pass")
        count += 1
        if matches(expected, outcome):
            continue
        path = at + (("expect", region, check) if listed else ("expect", region) if region in case.expect
                     else ("regions", region))
        line, column = doc.position(path, key=not listed)
        mismatches.append(Mismatch(doc.file, line, column, case.name, region, check, expected, outcome, case.deployed_at))
    return count, mismatches


def _table(ticks: list[Tick], focus: float) -> list[str]:
    nearest = min(range(len(ticks)), key=lambda i: (abs(ticks[i].at - focus), i))
    shown = ticks[max(0, nearest - CONTEXT): nearest + CONTEXT + 1]
    rows = [("", "time", "value", "threshold", "verdict", "reason")]
    for tick in shown:
        verdict = ("breaching" if tick.held is not None else "collecting samples") if tick.pending else tick.status
        reason = tick.reason if len(tick.reason) <= 90 else tick.reason[:87] + "..."
        rows.append((">" if tick is ticks[nearest] else "", _time(tick.at), _number(tick.value),
                     _number(tick.threshold), verdict, reason))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return [f"{r[0]:1} {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}  {r[4]:<{widths[4]}}  {r[5]}".rstrip()
            for r in rows]


def _time(at: float) -> str:
    return format_duration(at) if at > 0 else "0s" if at == 0 else "-" + format_duration(-at)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}"
