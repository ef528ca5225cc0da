"""The incident document in words: one headline, a status sentence, plain text, Markdown.

Sinks differ in format, not in what they say: every one of them renders the same
facts through these functions, so a page, a Slack message and a GitHub issue agree.
``public_text`` is the exception on purpose: a status page is read by customers, so it
says what happened and what is being done, without queries or internal hosts.
"""

from __future__ import annotations

from typing import Any

from guardrail.text import number

STATUS_WORDS = {"investigating": "INVESTIGATING", "identified": "IDENTIFIED", "monitoring": "MONITORING",
                "resolved": "RESOLVED"}


def headline(incident: dict[str, Any]) -> str:
    """``[IDENTIFIED] mail-sender 2023.01.05: rolled back after service-restarts``."""
    prefix = "[A PERSON IS NEEDED] " if incident.get("needs_person") else ""
    return f"{prefix}[{STATUS_WORDS.get(incident['status'], incident['status'].upper())}] {incident['title']}"


def status_sentence(incident: dict[str, Any]) -> str:
    """What is happening now, in one sentence (the incident's ``note`` adds the details)."""
    change = incident["change"]
    regions = ", ".join(incident.get("rolled_back") or []) or "no region"
    recovery_for = (incident.get("recovery") or {}).get("for", "")
    sentence = {
        "investigating": f"A policy failed for {incident['service']} {change['version']}.",
        "identified": ("The rollout was aborted" if incident.get("aborted") else "A policy failed")
                      + f" after {incident['service']} {change['version']} was deployed: rolling back"
                      f" {regions} to {change['previous']}.",
        "monitoring": f"{regions} rolled back to {change['previous']}; verifying that the checks stay healthy for"
                      f" {recovery_for}.",
        "resolved": f"Recovered after the rollback of {regions} to {change['previous']}"
                    + ("." if incident.get("note") else f": the checks stayed healthy for {recovery_for}."),
    }.get(incident["status"], incident["status"])
    return sentence + (f" {incident['note']}" if incident.get("note") else "")


def check_line(finding: dict[str, Any]) -> str:
    """One failing check: where, what, the value against the threshold, since when."""
    where = f"{finding.get('region')} {finding.get('check')}"
    reason = finding.get("reason") or f"{finding.get('value')} ({finding.get('comparison')})"
    since = f", first breach {finding['first_breach_at']}" if finding.get("first_breach_at") else ""
    return f"{where}: {reason}{since}"


def observed_values(finding: dict[str, Any], count: int = 6) -> str:
    values = [f"{number(o['value'])}@{(o['at'] or '')[11:19]}" for o in (finding.get("observed") or [])[-count:]]
    return ", ".join(values)


def action_line(action: dict[str, Any]) -> str:
    where = f" ({action['region']})" if action.get("region") else ""
    outcome = "ok" if action.get("ok") else "FAILED"
    detail = (action.get("detail") or "").strip().replace("\n", " ")
    return f"{action['phase']} action {action['plugin']}{where}: {outcome}" + (f": {detail[:200]}" if detail else "")


def person_line(entry: dict[str, Any]) -> str:
    """Who did what to the rollout, and why: ``alice approve (wave main): CHG-1042 approved``."""
    what = entry.get("action", "acted") + (f" (wave {entry['wave']})" if entry.get("wave") else "")
    return f"{entry.get('by') or 'unknown'} {what}" + (f": {entry['reason']}" if entry.get("reason") else "")


def plain_text(incident: dict[str, Any]) -> str:
    """Everything, as plain text (Alertmanager annotations, Opsgenie descriptions, notes)."""
    change = incident["change"]
    lines = [headline(incident), "", status_sentence(incident), "",
             f"Service: {incident['service']}",
             f"Change: {change['version']} (previous {change['previous']})"
             + (f" - {change['description']}" if change.get("description") else "")
             + (f" [{change['ticket']}]" if change.get("ticket") else ""),
             f"Decision: {incident['decision']}",
             "Regions: " + ", ".join(f"{r['region']} {r['state']}" for r in incident.get("regions") or [])]
    if incident.get("failing_checks"):
        lines.append("Failing checks:")
        for finding in incident["failing_checks"]:
            lines.append(f"- {check_line(finding)}")
            if finding.get("threshold") is not None:
                lines.append(f"  threshold: {number(finding['threshold'])} ({finding.get('comparison') or '-'})")
            if finding.get("query"):
                lines.append(f"  query: {finding['query']}")
            if finding.get("observed"):
                lines.append(f"  observed: {observed_values(finding)}")
    if incident.get("actions"):
        lines.append("Actions:")
        lines += [f"- {action_line(a)}" for a in incident["actions"]]
    if incident.get("people"):
        lines.append("People:")
        lines += [f"- {person_line(p)}" for p in incident["people"]]
    lines.append("More: " + "; ".join(incident.get("commands") or [incident.get("see_more", "")]))
    if incident.get("clock") == "virtual":
        lines.append("(simulated rollout: times are on its virtual clock)")
    return "\n".join(lines)


def markdown(incident: dict[str, Any]) -> str:
    """Everything, as GitHub-flavoured Markdown (issue bodies)."""
    change = incident["change"]
    out = [f"**{STATUS_WORDS.get(incident['status'], incident['status'])}** — {_md(status_sentence(incident))}", "",
           "| | |", "|---|---|",
           f"| service | `{incident['service']}` |",
           f"| change | `{change['version']}` (previous `{change['previous']}`)"
           + (f" {_md(change['description'])}" if change.get("description") else "")
           + (f" — {_md(change['ticket'])}" if change.get("ticket") else "") + " |",
           f"| decision | {_md(incident['decision'])} |",
           f"| opened | {incident.get('opened_at')} |",
           f"| severity | {incident.get('severity')} |", "",
           "### Regions", "", "| region | wave | state |", "|---|---|---|"]
    out += [f"| {r['region']} | {r['wave']} | {r['state']} |" for r in incident.get("regions") or []]
    if incident.get("failing_checks"):
        out += ["", "### Failing checks", ""]
        for f in incident["failing_checks"]:
            out += [f"- **{_md(f.get('region'))} {_md(f.get('check'))}** ({_md(f.get('policy'))}): {_md(f.get('reason'))}",
                    f"  - threshold: `{number(f.get('threshold'))}` ({_md(f.get('comparison') or '-')}),"
                    f" first breach: {f.get('first_breach_at') or '-'}"]
            if f.get("observed"):
                out.append(f"  - observed: {observed_values(f, 10)}")
            if f.get("query"):
                out.append(f"  - query: `{str(f['query']).replace('`', chr(39))}`")
    if incident.get("actions"):
        out += ["", "### Actions", ""] + [f"- {_md(action_line(a))}" for a in incident["actions"]]
    if incident.get("people"):
        out += ["", "### People", ""] + [f"- {_md(person_line(p))}" for p in incident["people"]]
    out += ["", "### More", ""] + [f"- `{c}`" for c in incident.get("commands") or []]
    out += ["", f"<!-- guardrail-incident: {incident['dedup_key']} -->"]
    return "\n".join(out)


def update_markdown(incident: dict[str, Any]) -> str:
    """One update (a comment): the new status, what happened since, the actions so far."""
    out = [f"**{STATUS_WORDS.get(incident['status'], incident['status'])}** at {incident.get('at')} —"
           f" {_md(status_sentence(incident))}"]
    if incident.get("actions"):
        out += [""] + [f"- {_md(action_line(a))}" for a in incident["actions"]]
    out += ["", "Regions: " + ", ".join(f"{r['region']} {r['state']}" for r in incident.get("regions") or [])]
    return "\n".join(out)


def public_text(incident: dict[str, Any]) -> str:
    """For customers: what is affected and what is being done; no queries, no hosts."""
    service = incident["service"]
    return {
        "investigating": f"We are investigating degraded service for {service} after a change.",
        "identified": f"A change to {service} caused degraded service. We are rolling it back.",
        "monitoring": f"The change to {service} has been rolled back. We are monitoring the results.",
        "resolved": f"{service} is healthy again after the rollback. This incident has been resolved.",
    }.get(incident["status"], incident["status"])



def _md(value: Any) -> str:
    """Table-safe Markdown: pipes and newlines would break a table row."""
    return str(value if value is not None else "-").replace("|", "\\|").replace("\n", " ")
