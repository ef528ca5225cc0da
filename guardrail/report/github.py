"""GitHub Actions: workflow-command annotations and the job's Markdown step summary.

Annotations are ``::error file=F,line=L,title=T::message`` lines, which the runner
reads from a step's output. GitHub documents the escaping: in the message ``%``,
``\\r`` and ``\\n`` become ``%25``, ``%0D`` and ``%0A``; in a property value ``:``
and ``,`` also become ``%3A`` and ``%2C``. A failing check points at the line of its
policy file (when the file lies in ``$GITHUB_WORKSPACE``), so the annotation shows on
that line in a pull request. GitHub shows at most 10 error annotations per step: the
tenth says how many more there are.

The step summary is Markdown appended to the file ``$GITHUB_STEP_SUMMARY`` names.
Values come from user YAML: they are HTML-escaped (GitHub renders HTML in summaries)
and table cells have their ``|`` escaped.
"""

from __future__ import annotations

import os
import re
from html import escape
from pathlib import Path

from guardrail.errors import OUTCOME_EXIT
from guardrail.text import iso, printable
from guardrail.report.data import Report, fmt

MAX_ERRORS = 10
ICON = {"promoted": "✅", "rolled_back": "❌", "halted": "⚠️", "rollback_failed": "🚨"}


def escape_data(text: str) -> str:
    # Each line's other control characters (an ESC the log viewer would obey) are escaped
    # as text first; the newlines left are the message's own, which GitHub encodes.
    text = re.sub("[^\r\n]+", lambda part: printable(part.group()), text)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(level: str, message: str, **properties: str | int | None) -> str:
    props = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items() if v not in (None, ""))
    return f"::{level}{' ' + props if props else ''}::{escape_data(message)}"


def _where(location: str | None, workspace: str | None) -> tuple[str | None, int | None]:
    """(file relative to the workspace, line) of a check defined at ``path:line``."""
    if not location or not workspace:
        return None, None
    path, _, line = location.rpartition(":")
    try:
        relative = Path(path).resolve().relative_to(Path(workspace).resolve())
    except ValueError:
        return None, None
    return relative.as_posix(), int(line) if line.isdigit() else None


def annotations(report: Report, workspace: str | None = None) -> list[str]:
    """The workflow commands for a finished (or stopped) rollout."""
    workspace = workspace if workspace is not None else os.environ.get("GITHUB_WORKSPACE")
    r = report.rollout
    out = []
    failing = [(c, v) for c in report.checks for v in c.verdicts if v.status == "fail" and v.wave is not None]
    for i, (check, v) in enumerate(failing):
        if i == MAX_ERRORS - 1 and len(failing) > MAX_ERRORS:
            out.append(command("error", f"{len(failing) - i} more failing checks: see the step summary or report",
                               title=f"guardrail: {r['service']} {r['version']}"))
            break
        file, line = _where(check.location, workspace)
        message = f"{v.reason}\nquery: {v.row.get('query') or '-'}\nvalue {fmt(v.row.get('value'))}, threshold " \
                  f"{fmt(v.row.get('threshold'))}; failed at {iso(v.failed_at)}" + (
                      f", breach began {iso(v.breach_at)}" if v.breach_at is not None else "")
        out.append(command("error", message, file=file, line=line,
                           title=f"guardrail: {check.name} failed in {v.region} (wave {v.wave})"))
    outcome = report.outcome
    if outcome == "rollback_failed":
        out.append(command("error", r.get("reason") or "rollback or recovery failed",
                           title="guardrail: a person is needed now"))
    elif outcome == "halted":
        out.append(command("warning", r.get("reason") or "halted", title=f"guardrail: {r['service']} rollout halted"))
    elif outcome == "rolled_back" and not failing:
        out.append(command("error", r.get("reason") or "rolled back", title=f"guardrail: {r['service']} rolled back"))
    return out


def _cell(value: object) -> str:
    return escape(printable(value if value is not None else "-")).replace("|", "\\|")


def step_summary(report: Report, report_file: str | None = None) -> str:
    """The Markdown step summary: outcome, regions, failing checks with evidence, warnings, incident."""
    r, s = report.rollout, report.summary
    outcome = report.outcome
    lines = [f"## {ICON.get(outcome, '⏳')} {_cell(r['service'])} {_cell(r['version'])}: "
             f"{_cell(outcome.replace('_', ' '))}", "",
             f"Rollout `{_cell(r['id'])}` · {_cell(r['previous'])} → {_cell(r['version'])}"
             + (f" · exit code {int(OUTCOME_EXIT[outcome])}" if outcome in OUTCOME_EXIT else ""), ""]
    if r.get("reason"):
        lines += [f"> {_cell(r['reason'])}", ""]
    lines += ["| wave | region | deployed | rolled back | verdict |", "|---|---|---|---|---|"]
    for wave in s["waves"]:
        for region in wave["regions"]:
            lines.append(f"| {_cell(wave['name'])} | {_cell(region['region'])} | {_cell(region['deployed_at'])} | "
                         f"{_cell(region['rolled_back_at'])} | {_cell(region['verdict'])} |")
    failing = [(c, v) for c in report.checks for v in c.verdicts if v.status == "fail" and v.wave is not None]
    if failing:
        lines += ["", "### Failing checks", "",
                  "| region | wave | check | value | threshold | breach began | failed at | reason |",
                  "|---|---|---|---|---|---|---|---|"]
        for check, v in failing:
            lines.append(f"| {_cell(v.region)} | {_cell(v.wave)} | {_cell(check.key)} | {_cell(fmt(v.row.get('value')))} "
                         f"| {_cell(fmt(v.row.get('threshold')))} | {_cell(iso(v.breach_at))} | "
                         f"{_cell(iso(v.failed_at))} | {_cell(v.reason)} |")
        lines += ["", "<details><summary>Queries</summary>", ""]
        lines += [f"- {_cell(v.region)} {_cell(check.key)}: <code>{_cell(v.row.get('query'))}</code>"
                  for check, v in failing]
        lines += ["", "</details>"]
    inconclusive = [(c, v) for c in report.checks for v in c.verdicts if v.status == "inconclusive" and v.wave]
    if inconclusive:
        lines += ["", "### Without clean evidence", ""]
        lines += [f"- {_cell(v.region)} {_cell(check.key)} (wave {_cell(v.wave)}): {_cell(v.reason)}"
                  for check, v in inconclusive]
    warned = s.get("warnings") or []
    if warned:
        lines += ["", "### Warnings (never failing)", ""]
        lines += [f"- {_cell(w['region'])} {_cell(w['policy'])}/{_cell(w['check'])} (wave {_cell(w['wave'])}, from "
                  f"{_cell(w['first_at'])}): {_cell(w['reason'])}" for w in warned]
    lines += ["", "### Checks", "", _tally(_verdict_counts(report))]
    if report.incident:
        inc = report.incident
        lines += ["", f"### Incident {_cell(inc.get('id'))}: {_cell(inc.get('status'))}", "", _cell(inc.get("title"))]
    if report_file:
        lines += ["", f"Report: <code>{_cell(report_file)}</code> (timeline, plots and evidence; "
                      "uploaded with the job's artifacts when the workflow does so)."]
    return "\n".join(lines) + "\n"


def _verdict_counts(report: Report) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in report.wave_verdicts():
        counts[v.status] = counts.get(v.status, 0) + 1
    return counts


def _tally(counts: dict[str, int]) -> str:
    if not counts:
        return "No check was evaluated."
    order = ("fail", "inconclusive", "warn", "pass", "skipped")
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    return "Evaluations per check, region and wave: " + ", ".join(parts) + "."


def problem_annotations(problems, workspace: str | None = None) -> list[str]:
    """One ``::error`` per problem of invalid input (``Problem``: file, line, column, key
    path), on its line when the file lies in the workspace; at most ``MAX_ERRORS``."""
    workspace = workspace if workspace is not None else os.environ.get("GITHUB_WORKSPACE")
    out = []
    for i, p in enumerate(problems):
        if i == MAX_ERRORS - 1 and len(problems) > MAX_ERRORS:
            out.append(command("error", f"{len(problems) - i} more problems: see the step summary",
                               title="guardrail: invalid input"))
            break
        file, _ = _where(f"{p.file}:{p.line}", workspace)
        message = f"{p.path}: {p.message}" if p.path else p.message
        out.append(command("error", message, file=file or p.file, line=p.line, col=p.column,
                           title=f"guardrail: invalid {Path(p.file).name}"))
    return out


def problems_summary(problems, command_line: str) -> str:
    """The Markdown step summary of a command refused for invalid input (exit 2)."""
    count = len(problems)
    lines = [f"## ❌ invalid input: {count} problem{'s' if count != 1 else ''}, nothing was changed", "",
             f"`{escape(command_line)}` exit code 2", "", "| file | line | key | problem |", "|---|---|---|---|"]
    for p in problems:
        lines.append(f"| {_cell(p.file)} | {p.line}:{p.column} | {_cell(p.path or '-')} | {_cell(p.message)} |")
    return "\n".join(lines) + "\n\n"
