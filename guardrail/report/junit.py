"""A rollout as JUnit XML, the format every CI test view reads.

One ``<testsuite>`` per wave, one ``<testcase>`` per check per region baked in that
wave (regions of earlier waves stay watched, so they appear again), plus a ``deploy``
test case per region the wave deploys; when something was rolled back, a last suite
holds the rollback and the recovery verification of each region.

Verdicts map to JUnit like this:

- ``fail`` → ``<failure>`` carrying the evidence (query, value, threshold, reference,
  when the breach began and when the check failed);
- a breach still inside its ``for:`` when another check's failure rolled the change
  back → ``<failure type="breach_cut_short">`` with its evidence: the rollback, not the
  check, ended it;
- ``inconclusive`` → ``<error>``: the check could not produce evidence (no data, the
  provider down, a breach still holding when the bake stopped for another reason). Not
  ``<skipped>``: CI views render skipped tests as neutral or hide them, and guardrail
  never treats missing evidence as harmless; ``<error>`` ("the test could not run
  properly") is what it is, and CI views show it in red next to failures;
- ``skipped`` (``compare: control`` with no control region left) and every test of a
  wave the rollout never reached → ``<skipped>`` with the reason;
- ``pass`` → an empty test case.

``time`` is how long the check was evaluated in that bake and a suite's ``time`` how
long the bake lasted (checks run side by side, so it is not their sum), on the
rollout's clock: for ``clock: virtual`` the simulated time (the ``clock`` property says
so), which is what the bake covered.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from guardrail.text import iso
from guardrail.report.data import CheckView, Report, Verdict, fmt

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: Any) -> str:
    """Characters XML 1.0 cannot hold (control characters from a YAML file) are dropped."""
    return _INVALID_XML.sub("", "" if value is None else str(value))


def evidence_text(v: Verdict) -> str:
    row = v.row
    lines = [
        f"{v.region} · wave {v.wave or '-'} · policy {v.policy} · check {v.check}",
        f"verdict: {v.status} — {v.reason}",
        f"value: {fmt(row.get('value'))}   threshold: {fmt(row.get('threshold'))}   "
        f"comparison: {row.get('comparison') or '-'}   reference: {fmt(row.get('reference'))}",
    ]
    if v.breach_at is not None:
        lines.append(f"breach began: {iso(v.breach_at)}")
    if v.failed_at is not None:
        lines.append(f"failed at: {iso(v.failed_at)}")
    lines.append(f"evaluations: {v.evaluations} ({v.failures} failed, {v.inconclusives} inconclusive), "
                 f"{iso(v.first_at)} to {iso(v.last_at)}")
    if row.get("query"):
        lines.append(f"query: {row['query']}")
    if row.get("evidence"):
        lines.append("evidence: " + json.dumps(row["evidence"], sort_keys=True, default=str))
    return "\n".join(lines)


class _Suite:
    def __init__(self, parent: ET.Element, name: str, timestamp: float | None, virtual: bool):
        self.element = ET.SubElement(parent, "testsuite", name=_text(name))
        self.scale = 1.0  # the rollout's own clock, simulated or not: what the bake covered
        if timestamp is not None:
            self.element.set("timestamp", iso(timestamp).removesuffix("Z"))
        self.counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        self.start: float | None = None
        self.end: float | None = None

    def case(self, classname: str, name: str, *, span: tuple[float, float] | None = None, outcome: str = "pass",
             message: str = "", body: str = "", kind: str = "") -> None:
        seconds = 0.0
        if span is not None:
            self.start = span[0] if self.start is None else min(self.start, span[0])
            self.end = span[1] if self.end is None else max(self.end, span[1])
            seconds = max(span[1] - span[0], 0.0) * self.scale
        case = ET.SubElement(self.element, "testcase", classname=_text(classname), name=_text(name),
                             time=f"{seconds:.3f}")
        self.counts["tests"] += 1
        tag = {"fail": "failure", "inconclusive": "error", "skipped": "skipped"}.get(outcome)
        if tag is None:
            return
        self.counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[tag]] += 1
        child = ET.SubElement(case, tag, message=_text(message))
        if kind:
            child.set("type", _text(kind))
        if body:
            child.text = _text(body)

    @property
    def seconds(self) -> float:
        return (self.end - self.start) * self.scale if self.start is not None and self.end is not None else 0.0

    def close(self) -> None:
        for key, value in self.counts.items():
            self.element.set(key, str(value))
        self.element.set("time", f"{self.seconds:.3f}")


def render(report: Report) -> str:
    """The JUnit XML document of a rollout (UTF-8 text with its declaration)."""
    r = report.rollout
    service, virtual = r["service"], r["clock"] == "virtual"
    root = ET.Element("testsuites", name=_text(f"guardrail rollout {r['id']}: {service} {r['version']}"))
    deploys = {s.row: s for s in report.spans if s.kind == "deploy"}
    suites = []
    for wave in report.waves:
        phase = f"bake:{wave['name']}"
        verdicts = [v for c in report.checks for v in c.verdicts if v.phase == phase]
        suite = _Suite(root, f"wave {wave['name']}", min((v.first_at for v in verdicts), default=None), virtual)
        suites.append(suite)
        _properties(suite.element, report)
        for region in wave["regions"]:
            span = deploys.get(region)
            classname = f"{service}.{wave['name']}.{region}"
            if span is None:
                suite.case(classname, "deploy", outcome="skipped", message=_not_reached(report))
            else:
                suite.case(classname, "deploy", span=(span.start, span.end), outcome="pass" if span.ok else "fail",
                           message=span.label, body=span.label, kind="deploy_failed")
        measured = {v.region for v in verdicts}
        for region in [g for g in report.region_order() if g in measured or g in wave["regions"]]:
            classname = f"{service}.{wave['name']}.{region}"
            for check in report.checks:
                _check_case(suite, classname, check, check.verdict(region, phase), report, region in deploys)
    recovery = [v for c in report.checks for v in c.verdicts if v.phase == "recovery"]
    rollbacks = [s for s in report.spans if s.kind == "rollback"]
    if rollbacks or recovery:
        suite = _Suite(root, "rollback and recovery", min((s.start for s in rollbacks), default=None), virtual)
        suites.append(suite)
        _properties(suite.element, report)
        for span in rollbacks:
            suite.case(f"{service}.rollback.{span.row}", "rollback", span=(span.start, span.end),
                       outcome="pass" if span.ok else "fail", message=span.label, body=span.label,
                       kind="rollback_failed")
        for v in recovery:
            outcome = v.status if v.status in ("fail", "inconclusive") else "pass"
            suite.case(f"{service}.recovery.{v.region}", f"{v.policy}/{v.check}", span=(v.first_at, v.last_at),
                       outcome=outcome, message=f"not recovered: {v.reason}", body=evidence_text(v), kind=v.status)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        suite.close()
        for key in totals:
            totals[key] += suite.counts[key]
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{max(report.end - report.start, 0.0):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _properties(suite: ET.Element, report: Report) -> None:
    r = report.rollout
    properties = ET.SubElement(suite, "properties")
    for name, value in (("rollout_id", r["id"]), ("service", r["service"]), ("version", r["version"]),
                        ("previous", r["previous"]), ("outcome", report.outcome), ("state", r["state"]),
                        ("clock", r["clock"]), ("reason", r.get("reason"))):
        if value:
            ET.SubElement(properties, "property", name=name, value=_text(value))


def _check_case(suite: _Suite, classname: str, check: CheckView, v: Verdict | None, report: Report,
                deployed: bool) -> None:
    name = f"{check.policy}/{check.name}"
    if v is None:
        if not deployed:
            message = _not_reached(report)
        else:
            message = "not evaluated in this bake" if report.rollout["finished_at"] else "not evaluated yet"
        suite.case(classname, name, outcome="skipped", message=message)
        return
    span = (v.first_at, v.last_at)
    if v.status == "pass":
        suite.case(classname, name, span=span)
    elif v.status == "skipped":
        suite.case(classname, name, span=span, outcome="skipped", message=v.reason)
    elif v.status == "inconclusive" and v.row.get("pending") and report.outcome in ("rolled_back", "rollback_failed"):
        suite.case(classname, name, span=span, outcome="fail", message=f"breach cut short by the rollback: {v.reason}",
                   body=evidence_text(v), kind="breach_cut_short")
    else:
        suite.case(classname, name, span=span, outcome=v.status, message=v.reason, body=evidence_text(v),
                   kind=v.status)


def _not_reached(report: Report) -> str:
    r = report.rollout
    if not r["finished_at"]:
        return f"not reached yet (rollout is {r['state']})"
    return f"not reached: the rollout ended {report.outcome.replace('_', ' ')}" + (
        f" ({r['reason']})" if r.get("reason") else "")
