"""The final JSON document of a rollout (``--output json``, ``guardrail status --json``).

Its shape is a contract documented in README: rollout id, service, version, outcome,
``waves[].regions[]`` with ``deployed_at``, ``rolled_back_at`` and ``verdict``, the
failing checks with their evidence, the incident, ``notices``: sentences about
what a person should not miss (a lock taken over, a change window overridden, an
interruption, an internal error), ``driver``: who drives the rollout now
(``guardrail.state.liveness``; null once finished), ``people``: every act of a
person on it (``guardrail.state.people``), and ``warnings``: each check that warned in a
bake (``warn_if``, ``mode: warn``), which never decided the rollout.
"""

from __future__ import annotations

from typing import Any

from guardrail.errors import NotFound
from guardrail.report.event_text import describe
from guardrail.report.evidence import coverage_by_region, region_verdict
from guardrail.text import iso
from guardrail.state.liveness import driver
from guardrail.state.people import on_record
from guardrail.state.protocol import Store
from guardrail.state.states import outcome_of

OUTCOMES = ("promoted", "rolled_back", "halted", "rollback_failed", "locked")
NOTICES = ("lock.taken_over", "lock.lost", "window.overridden", "plan.changed", "rollout.interrupted", "rollout.error")
"""Events a person reading ``status`` should not miss, told as sentences (``notices``)."""


def summarize(store: Store, rollout_id: str) -> dict[str, Any]:
    row = store.rollout(rollout_id)
    started = store.events(rollout_id, "rollout.started")
    layout = started[0]["waves"] if started else []
    steps = {s["key"]: s for s in store.steps(rollout_id)}
    failed = steps.get("decision:failed")
    failure = (failed["detail"] or {}) if failed else None
    phase, coverage = coverage_by_region(store, rollout_id, layout)
    waves = []
    for wave in layout:
        regions = []
        passed = f"wave:{wave['name']}:passed" in steps
        for region in wave["regions"]:
            deploy, rollback = steps.get(f"deploy:{region}"), steps.get(f"rollback:{region}")
            rollback = rollback if rollback and rollback["status"] == "done" else None
            regions.append({
                "region": region,
                "deployed_at": iso(deploy["finished_at"]) if deploy and deploy["status"] == "done" else None,
                "rolled_back_at": iso(rollback["finished_at"]) if rollback else None,
                "verdict": region_verdict(region, deploy=deploy, rollback=rollback, row=row, failed=failure,
                                          wave_passed=passed),
                "coverage": coverage.get(region, []) if deploy else [],
            })
        waves.append({"name": wave["name"], "regions": regions})
    failed = steps.get("decision:failed")
    try:
        incident = store.incident(rollout_id)
    except NotFound:
        incident = None
    outcome = outcome_of(row["state"])  # never the stored column: a resumed rollout keeps its old value there
    return {
        "rollout_id": rollout_id,
        "service": row["service"],
        "version": row["version"],
        "previous": row["previous"],
        "state": row["state"],
        "outcome": outcome if outcome in OUTCOMES else None,
        "reason": row["reason"],
        "started_at": iso(row["clock_start"]),
        "finished": bool(row["finished_at"]),
        "waves": waves,
        "coverage_phase": phase,
        "failing_checks": (failed["detail"] or {}).get("findings", []) if failed else [],
        "incident": incident,
        "notices": [str(describe(e)) for e in store.events(rollout_id, NOTICES)],
        "driver": driver(store, row),
        "people": on_record(store, rollout_id),
        "warnings": warnings(store, rollout_id),
    }


def warnings(store: Store, rollout_id: str) -> list[dict[str, Any]]:
    """One entry per check and region that warned (``check.warned`` events): when it first
    warned, how many times it started to, and the evidence of the first time."""
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for event in store.events(rollout_id, "check.warned"):
        key = (event.get("wave"), event.get("region"), event.get("policy"), event.get("check"))
        if key in out:
            out[key]["times"] += 1
            continue
        out[key] = {"wave": key[0], "region": key[1], "policy": key[2], "check": key[3], "first_at": iso(event["at"]),
                    "times": 1, "value": event.get("value"), "threshold": event.get("threshold"),
                    "reason": event.get("reason")}
    return list(out.values())

