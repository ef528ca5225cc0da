"""What an incident says: everything a person paged at 2 a.m. needs, in one document.

The document is plain JSON, the same for every sink (each sink renders it in its own
format with ``guardrail.plugin.incident_text``): the service and the change, every region and
its state, each failing check with its query, observed values, threshold and first
breach, the decision, the remediation actions with their outcome, the recovery so far,
the timeline of updates, and the commands that show more.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from guardrail.language.types import format_duration

if TYPE_CHECKING:
    from guardrail.rollout.engine import Engine, Failure

SEVERITY = {"investigating": "error", "identified": "error", "monitoring": "warning", "resolved": "info"}
"""Severity by status (PagerDuty's vocabulary); ``critical`` when a person is needed now."""


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


def incident_id(rollout_id: str) -> str:
    return f"INC-{rollout_id}"


def dedup_key(service: str, rollout_id: str) -> str:
    """One key per failed rollout, the same in every sink and every update. Slash-free:
    sinks put it in URL paths (Opsgenie aliases)."""
    return f"guardrail:{service}:{rollout_id}"


def build_incident(engine: Engine, failure: Failure, rolled_back: list[str], *, status: str,
                   actions: list[dict[str, Any]] | None = None, note: str | None = None, revision: int = 0,
                   needs_person: bool = False, timeline: list[dict[str, Any]] | None = None,
                   recovery: dict[str, Any] | None = None, at: float | None = None) -> dict[str, Any]:
    """The incident document as of ``at`` (default: now on the rollout's clock)."""
    rollout = engine.rollout
    at = engine.clock.now() if at is None else at
    change = rollout.change
    steps = {s["key"]: s for s in engine.store.steps(engine.id)}
    decided = steps.get("decision:failed")
    if failure.aborted:
        title = f"{rollout.service} {change.version}: aborted and rolled back"
    else:
        title = (f"{rollout.service} {change.version}: rolled back after "
                 + (", ".join(sorted({f['check'] for f in failure.findings})) or "a failure"))
    return {
        "id": incident_id(engine.id),
        "dedup_key": dedup_key(rollout.service, engine.id),
        "rollout_id": engine.id,
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
        "regions": _regions(engine, steps, rolled_back if status != "investigating" else []),
        "rolled_back": rolled_back,
        "failing_checks": [_finding(engine, f) for f in failure.findings],
        "actions": actions or [],
        "recovery": recovery or {"for": format_duration(rollout.verify_recovery.for_)},
        "note": note,
        "timeline": (timeline or []) + [{"at": iso(at), "status": status, "note": note}],
        "at": iso(at),
        "clock": rollout.clock,
        "update_every": format_duration(rollout.on_failure.update_every),
        "see_more": f"guardrail status {engine.id}",
        "commands": [f"guardrail status {engine.id}", f"guardrail incidents show {incident_id(engine.id)}",
                     f"guardrail report {engine.id} --html report.html"],
    }


def _regions(engine: Engine, steps: dict[str, dict[str, Any]], rolling: list[str]) -> list[dict[str, Any]]:
    """Each region's state; the rollback targets read "rolling back" from the moment it started."""
    change = engine.rollout.change
    deployed = engine.deployed_regions()
    out = []
    for wave in engine.rollout.waves:
        for region in wave.regions:
            rb = steps.get(f"rollback:{region}")
            state = ("rolled back" if rb and rb["status"] == "done" else "rollback failed" if rb and rb["status"] == "failed"
                     else "rolling back" if rb or region in rolling else f"on {change.version}" if region in deployed
                     else f"untouched ({change.previous})")
            out.append({"region": region, "wave": wave.name, "state": state})
    return out


def _finding(engine: Engine, finding: dict[str, Any]) -> dict[str, Any]:
    entry = dict(finding)
    entry["first_breach_at"] = iso(finding.get("first_breach_at"))
    entry["observed"] = _observed(engine, finding)
    return entry


def _observed(engine: Engine, finding: dict[str, Any]) -> list[dict[str, Any]]:
    """The last values of a failing check in its region, oldest first."""
    if finding.get("check") == "deploy":
        return []
    rows = [m for m in engine.store.measurements(engine.id, finding.get("phase"), region=finding["region"],
                                                 check=finding["check"]) if m["policy"] == finding["policy"]]
    return [{"at": iso(m["at"]), "value": m["value"], "status": m["status"]} for m in rows[-10:]]
