"""What an incident says: everything a person paged at 2 a.m. needs, in one document.

The document is plain JSON, the same for every sink (each sink renders it in its own
format with ``guardrail.plugin.incident_text``): the service and the change, every region and
its state, each failing check with its query, observed values, threshold and first
breach, the decision, the remediation actions with their outcome, the recovery so far,
the timeline of updates, the people who acted on the rollout (who approved, paused,
aborted, and why), and the commands that show more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guardrail.text import format_duration, iso

if TYPE_CHECKING:
    from guardrail.judging.decisions import Failure
    from guardrail.language.model import Rollout

SEVERITY = {"investigating": "error", "identified": "error", "monitoring": "warning", "resolved": "info"}
"""Severity by status (PagerDuty's vocabulary); ``critical`` when a person is needed now."""


def incident_id(rollout_id: str) -> str:
    return f"INC-{rollout_id}"


def dedup_key(service: str, rollout_id: str) -> str:
    """One key per failed rollout, the same in every sink and every update. Slash-free:
    sinks put it in URL paths (Opsgenie aliases)."""
    return f"guardrail:{service}:{rollout_id}"


def build_incident(rollout: Rollout, rollout_id: str, failure: Failure, rolled_back: list[str], *,
                   steps: dict[str, dict[str, Any]], deployed: list[str],
                   observed: dict[tuple[str, str, str], list[dict[str, Any]]], status: str, at: float,
                   actions: list[dict[str, Any]] | None = None, note: str | None = None, revision: int = 0,
                   needs_person: bool = False, timeline: list[dict[str, Any]] | None = None,
                   recovery: dict[str, Any] | None = None,
                   people: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The incident document as of ``at``, from plain records: the rollout's ``steps`` by
    key, the regions whose deploy started, and the values ``observed`` of each failing
    check (``observed_values``). Pure: it reads no store and no clock."""
    change = rollout.change
    decided = steps.get("decision:failed")
    if failure.aborted:
        title = f"{rollout.service} {change.version}: aborted and rolled back"
    else:
        title = (f"{rollout.service} {change.version}: rolled back after "
                 + (", ".join(sorted({f['check'] for f in failure.findings})) or "a failure"))
    return {
        "id": incident_id(rollout_id),
        "dedup_key": dedup_key(rollout.service, rollout_id),
        "rollout_id": rollout_id,
        "status": status,
        "revision": revision,
        "severity": "critical" if needs_person else SEVERITY.get(status, "error"),
        "needs_person": needs_person,
        "title": title,
        "service": rollout.service,
        "change": change.model_dump(exclude_none=True),
        "decision": failure.reason,
        "aborted": failure.aborted,
        "opened_at": iso(decided["started_at"]) if decided else iso(at),
        "regions": _regions(rollout, deployed, steps, rolled_back if status != "investigating" else []),
        "rolled_back": rolled_back,
        "failing_checks": [_finding(f, observed) for f in failure.findings],
        "actions": actions or [],
        "recovery": recovery or {"for": format_duration(rollout.verify_recovery.for_)},
        "note": note,
        "people": people or [],
        "timeline": (timeline or []) + [{"at": iso(at), "status": status, "note": note}],
        "at": iso(at),
        "clock": rollout.clock,
        "update_every": format_duration(rollout.on_failure.update_every),
        "see_more": f"guardrail status {rollout_id}",
        "commands": [f"guardrail status {rollout_id}", f"guardrail incidents show {incident_id(rollout_id)}",
                     f"guardrail report {rollout_id} --html report.html"],
    }


def _regions(rollout: Rollout, deployed: list[str], steps: dict[str, dict[str, Any]],
             rolling: list[str]) -> list[dict[str, Any]]:
    """Each region's state; the rollback targets read "rolling back" from the moment it started."""
    change = rollout.change
    out = []
    for wave in rollout.waves:
        for region in wave.regions:
            rb = steps.get(f"rollback:{region}")
            state = ("rolled back" if rb and rb["status"] == "done" else "rollback failed" if rb and rb["status"] == "failed"
                     else "rolling back" if rb or region in rolling else f"on {change.version}" if region in deployed
                     else f"untouched ({change.previous})")
            out.append({"region": region, "wave": wave.name, "state": state})
    return out


def _finding(finding: dict[str, Any], observed: dict[tuple[str, str, str], list[dict[str, Any]]]) -> dict[str, Any]:
    entry = dict(finding)
    entry["first_breach_at"] = iso(finding.get("first_breach_at"))
    entry["observed"] = observed.get((finding["region"], finding.get("policy"), finding["check"]), [])
    return entry


def observed_values(store: Any, rollout_id: str, finding: dict[str, Any]) -> list[dict[str, Any]]:
    """The last values of a failing check in its region, oldest first (the incident's evidence)."""
    if finding.get("check") == "deploy":
        return []
    rows = [m for m in store.measurements(rollout_id, finding.get("phase"), region=finding["region"],
                                          check=finding["check"]) if m["policy"] == finding["policy"]]
    return [{"at": iso(m["at"]), "value": m["value"], "status": m["status"]} for m in rows[-10:]]
