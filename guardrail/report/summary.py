"""The final JSON document of a rollout (``--output json``, ``guardrail status --json``).

Its shape is a contract documented in README: rollout id, service, version, outcome,
``waves[].regions[]`` with ``deployed_at``, ``rolled_back_at`` and ``verdict``, the
failing checks with their evidence, the incident, and ``notices``: sentences about
what a person should not miss (a lock taken over, a change window overridden).
"""

from __future__ import annotations

from typing import Any

from guardrail.errors import NotFound
from guardrail.report.event_text import describe
from guardrail.text import iso
from guardrail.state.sqlite import SQLiteStore
from guardrail.state.states import outcome_of

OUTCOMES = ("promoted", "rolled_back", "halted", "rollback_failed", "locked")
NOTICES = ("lock.taken_over", "lock.lost", "window.overridden", "plan.changed")
"""Events a person reading ``status`` should not miss, told as sentences (``notices``)."""


def summarize(store: SQLiteStore, rollout_id: str) -> dict[str, Any]:
    row = store.rollout(rollout_id)
    started = store.events(rollout_id, "rollout.started")
    layout = started[0]["waves"] if started else []
    steps = {s["key"]: s for s in store.steps(rollout_id)}
    verdicts = _verdicts(store, rollout_id)
    waves = []
    for wave in layout:
        regions = []
        for region in wave["regions"]:
            deploy, rollback = steps.get(f"deploy:{region}"), steps.get(f"rollback:{region}")
            if deploy is None:
                verdict = "not_deployed"
            elif deploy["status"] == "failed":
                verdict = "deploy_failed"
            else:
                verdict = verdicts.get(region, "not_evaluated")
            regions.append({
                "region": region,
                "deployed_at": iso(deploy["finished_at"]) if deploy and deploy["status"] == "done" else None,
                "rolled_back_at": iso(rollback["finished_at"]) if rollback and rollback["status"] == "done" else None,
                "verdict": verdict,
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
        "failing_checks": (failed["detail"] or {}).get("findings", []) if failed else [],
        "incident": incident,
        "notices": [str(describe(e)) for e in store.events(rollout_id, NOTICES)],
    }


def _verdicts(store: SQLiteStore, rollout_id: str) -> dict[str, str]:
    """Per region: the worst verdict over the bakes (fail > inconclusive > pass)."""
    rank = {"pass": 0, "inconclusive": 1, "fail": 2}
    worst: dict[str, str] = {}
    for region, status in store.measurement_statuses(rollout_id, "bake:%"):
        if rank[status] > rank.get(worst.get(region), -1):
            worst[region] = status
    return worst
