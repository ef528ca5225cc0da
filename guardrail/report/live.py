"""What ``guardrail status ID --watch`` shows, read from the store alone (so any terminal,
on any machine that reaches the store, can follow a rollout another process drives).

``live_view`` returns plain data: the rollout's summary (``report.summary``: waves,
regions, verdicts, state and outcome, the same everywhere), the current bake (time
covered and left), each check's latest evaluation against its threshold, and the last
events as sentences. The view is a dict of sections so a section can be added (bake
coverage, who drives the rollout) without touching the others.
"""

from __future__ import annotations

import time
from typing import Any

from guardrail.report.event_text import describe
from guardrail.report.summary import summarize
from guardrail.state.protocol import Store
from guardrail.state.states import outcome_of
from guardrail.text import iso

LAST_EVENTS = 6


def live_view(store: Store, rollout_id: str, now: float | None = None) -> dict[str, Any]:
    """The rollout as it stands. ``now``: the wall clock for a real-clock rollout; a
    simulated one is read at its own latest recorded time."""
    summary = summarize(store, rollout_id)
    row = store.rollout(rollout_id)
    if row["clock"] == "virtual":
        now = store.last_time(rollout_id) or row["clock_start"]
    elif now is None:
        now = time.time()
    bake = _bake(store, rollout_id, now, running=row["state"] == "baking")
    phase = "recovery" if row["state"] == "verifying_recovery" else f"bake:{bake['wave']}" if bake else None
    events = [e for e in store.events(rollout_id) if describe(e)][-LAST_EVENTS:]
    return {
        **summary,
        "now": iso(now),
        "ended": outcome_of(row["state"]) is not None,
        "bake": bake,
        "checks": _latest(store, rollout_id, phase) if phase else [],
        "events": [{"at": iso(e["at"]), "text": str(describe(e))} for e in events],
    }


def _bake(store: Store, rollout_id: str, now: float, running: bool) -> dict[str, Any] | None:
    """The latest bake: its wave, length, and time covered and left (a bake that stopped
    early, on a failure or a halt, covered up to its last evaluation)."""
    steps = store.steps(rollout_id, "bake:")
    if not steps:
        return None
    step = steps[-1]
    wave = step["key"].removeprefix("bake:")
    started = store.events(rollout_id, "rollout.started")
    length = next((w["bake"] for w in (started[0]["waves"] if started else []) if w["name"] == wave), 0.0)
    start = (step["detail"] or {}).get("start", step["started_at"])
    done = step["status"] == "done"
    if not running and not done:
        last = [m["at"] for m in store.measurements(rollout_id, step["key"])[-1:]]
        now = last[0] if last else start
    covered = length if done else min(max(now - start, 0.0), length)
    return {"wave": wave, "length": length, "covered": covered, "left": max(length - covered, 0.0), "done": done,
            "started_at": iso(start)}


def _latest(store: Store, rollout_id: str, phase: str) -> list[dict[str, Any]]:
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for m in store.measurements(rollout_id, phase):
        latest[(m["region"], m["policy"], m["check"])] = m
    return [{"region": r, "policy": p, "check": c, "status": m["status"], "pending": bool(m["pending"]),
             "value": m["value"], "threshold": m["threshold"], "comparison": m["comparison"], "at": iso(m["at"])}
            for (r, p, c), m in latest.items()]
