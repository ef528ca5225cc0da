"""What an incident says: everything a person paged at 2 a.m. needs, in one document."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .incidents import dedup_key, incident_id

if TYPE_CHECKING:
    from .engine import Engine, Failure


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


def build_incident(engine: Engine, failure: Failure, rolled_back: list[str], *, status: str,
                   actions: list[dict[str, Any]] | None = None, note: str | None = None) -> dict[str, Any]:
    rollout = engine.rollout
    change = rollout.change
    deployed = engine.deployed_regions()
    steps = {s["key"]: s for s in engine.store.steps(engine.id)}
    regions = []
    for wave in rollout.waves:
        for region in wave.regions:
            rb = steps.get(f"rollback:{region}")
            state = ("rolled back" if rb and rb["status"] == "done" else "rollback failed" if rb and rb["status"] == "failed"
                     else "rolling back" if rb else f"on {change.version}" if region in deployed else f"untouched ({change.previous})")
            regions.append({"region": region, "wave": wave.name, "state": state})
    findings = []
    for finding in failure.findings:
        entry = dict(finding)
        entry["first_breach_at"] = iso(finding.get("first_breach_at"))
        entry["observed"] = _observed(engine, finding)
        findings.append(entry)
    title = (f"{rollout.service} {change.version}: rolled back after "
             + (", ".join(sorted({f['check'] for f in failure.findings})) or "a failure"))
    return {
        "id": incident_id(engine.id),
        "dedup_key": dedup_key(rollout.service, engine.id),
        "rollout_id": engine.id,
        "status": status,
        "title": title,
        "service": rollout.service,
        "change": change.model_dump(exclude_none=True),
        "decision": failure.reason,
        "aborted": failure.aborted,
        "regions": regions,
        "rolled_back": rolled_back,
        "failing_checks": findings,
        "actions": actions or [],
        "note": note,
        "at": iso(engine.clock.now()),
        "see_more": f"guardrail status {engine.id}",
    }


def _observed(engine: Engine, finding: dict[str, Any]) -> list[dict[str, Any]]:
    """The last values of a failing check in its region, oldest first."""
    if finding.get("check") == "deploy":
        return []
    rows = [m for m in engine.store.measurements(engine.id, finding.get("phase"), region=finding["region"],
                                                 check=finding["check"]) if m["policy"] == finding["policy"]]
    return [{"at": iso(m["at"]), "value": m["value"], "status": m["status"]} for m in rows[-10:]]
