"""Verifying recovery after a rollback: the failing checks must pass, cleanly and
without interruption, for ``verify_recovery.for`` on the rolled-back regions.

A signal that fails again while we watch resets the clock (the OpenSRS seed: an
incident marked resolved that came back) and sends the incident back to
``identified``, saying so; when the checks pass again it returns to ``monitoring``.
Giving up after ``timeout`` (default four times ``for``) means a person is needed.
Every tick also gives the incident its chance to send a periodic update.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model.types import format_duration
from .ticks import Phase

if TYPE_CHECKING:
    from .engine import Engine, Failure
    from .incidents import IncidentTracker


def verify_recovery(engine: Engine, failure: Failure, regions: list[str],
                    incident: IncidentTracker | None = None) -> tuple[bool, str]:
    spec = engine.rollout.verify_recovery
    checks = {(f["policy"], f["check"]) for f in failure.findings if f.get("check") != "deploy"}
    only = checks if spec.checks == "failing" and checks else None
    items = engine.evaluator.items(regions, only)
    if not items:
        return True, "nothing to verify"
    step = engine.store.step(engine.id, "verify")
    if step is None:
        start = engine.clock.now()
        engine.store.start_step(engine.id, "verify", start, {"start": start})
    else:
        start = step["detail"]["start"]
    timeout = spec.timeout or 4 * spec.for_
    phase = Phase(rollout_id=engine.id, name="recovery", start=start, items=items, evaluator=engine.evaluator,
                  store=engine.store, clock=engine.clock, baselines=engine.store.baselines(engine.id),
                  realtime=engine.realtime)
    clean_since: float | None = None
    relapses = 0
    for at, _ in phase.run(before=lambda t: engine.lease.renew()):
        unclean = phase.unclean()
        if unclean:
            if clean_since is not None and any(phase.states[i].last.status == "fail" for i in unclean):
                relapses += 1
                reasons = [f"{i}: {phase.states[i].last.reason}" for i in unclean][:5]
                engine.emit("recovery.relapsed", items=[str(i) for i in unclean], reasons=reasons)
                if incident is not None:
                    incident.relapsed(at, relapses, reasons)
            clean_since = None
        elif clean_since is None:
            clean_since = at
            if relapses and incident is not None:
                incident.recovering(at, relapses)
        if clean_since is not None and at - clean_since >= spec.for_:
            note = f"checks passed for {format_duration(at - clean_since)} after rollback"
            return True, note + (f" ({relapses} relapse{'s' if relapses != 1 else ''} before)" if relapses else "")
        if at - start >= timeout:
            reasons = "; ".join(f"{i}: {phase.states[i].last.reason}" for i in unclean[:3]) if unclean else "not long enough"
            return False, f"checks still unhealthy {format_duration(timeout)} after rollback ({reasons})"
        if incident is not None:
            incident.tick(at, clean_since, [f"{i}: {phase.states[i].last.reason}" for i in unclean])
    return False, "verification stopped"
