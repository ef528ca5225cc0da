"""Events as sentences, for the terminal's progress lines and the report's event log."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from guardrail.state.people import sentence


def describe(e: dict[str, Any]) -> str | None:
    """One event as a sentence for the event log (None for bookkeeping events)."""
    kind = e["kind"]
    if kind == "rollout.started":
        change = e.get("change") or {}
        waves = " → ".join(f"{w['name']} [{', '.join(w['regions'])}]" for w in e.get("waves") or [])
        return f"started: {e.get('service')} {change.get('previous')} → {change.get('version')} in waves {waves}"
    if kind == "rollout.resumed":
        return f"resumed (was {e.get('previous_state')})"
    if kind == "preflight":
        failing, missing = e.get("failing") or [], e.get("missing") or []
        if failing:
            return "preflight: already failing: " + "; ".join(failing)
        if missing:
            return "preflight: evidence missing: " + "; ".join(missing)
        return "preflight: policies pass"
    if kind == "plan.changed":
        return f"the plan or its policies changed since the rollout started: {e.get('detail')}"
    if kind == "window.overridden":
        return f"change freeze {e.get('window')!r} overridden: {e.get('reason')}"
    if kind == "gate.answered":
        return f"wave {e.get('wave')}: gate {'said yes' if e.get('ok') else 'said NO'} ({e.get('detail')})"
    if kind == "state.deploying":
        return f"wave {e.get('wave')}: deploying {', '.join(e.get('regions') or [])}"
    if kind in ("region.deployed", "region.deploy_failed", "region.rolled_back", "region.rollback_failed"):
        what = {"region.deployed": "deployed", "region.deploy_failed": "DEPLOY FAILED",
                "region.rolled_back": "rolled back", "region.rollback_failed": "ROLLBACK FAILED"}[kind]
        return f"{e.get('region')}: {what}" + (f" ({e['detail']})" if e.get("detail") else "")
    if kind == "state.baking":
        return f"wave {e.get('wave')}: baking for {e.get('bake')}"
    if kind == "check.warned":
        return f"{e.get('region')}/{e.get('policy')}/{e.get('check')}: warning: {e.get('reason')} (the wave goes on)"
    if kind == "bake.passed":
        return f"wave {e.get('wave')}: bake passed ({', '.join(e.get('regions') or [])} healthy)"
    if kind == "wave.passed":
        return f"wave {e.get('wave')} passed"
    if kind in ("state.failed", "state.aborted"):
        return f"{'ABORTED' if kind == 'state.aborted' else 'FAILED'}: {e.get('reason', '')}"
    if kind == "state.rolling_back":
        return f"rolling back {', '.join(e.get('regions') or [])} (reverse wave order)"
    if kind == "state.rolled_back":
        return f"rolled back {', '.join(e.get('regions') or [])}"
    if kind == "action.ran":
        where = f" in {e['region']}" if e.get("region") else ""
        return f"{e.get('phase')} action {e.get('plugin')}{where}: {'ok' if e.get('ok') else 'FAILED'}" + (
            f" ({e['detail']})" if e.get("detail") else "")
    if kind == "incident.delivered":
        return f"incident {e.get('incident')} ({e.get('status')}) delivered to {e.get('sink')}"
    if kind == "incident.delivery_failed":
        then = "rejected" if e.get("rejected") else "spooled, retried later" if e.get("spooled") else "failed"
        return f"incident {e.get('incident')} ({e.get('status')}) not delivered to {e.get('sink')}: " \
               f"{e.get('error') or 'error'} ({then})"
    if kind.startswith("incident."):
        sinks = ", ".join(f"{s.get('sink')}" + ("" if s.get("ok") else f" (spooled: {s.get('error', '')})")
                          for s in e.get("sinks") or [])
        return f"incident {e.get('incident')} {kind.split('.', 1)[1]} → {sinks or 'no sink'}"
    if kind == "lock.taken_over":
        held = f"{e.get('previous_holder')}, held since {_when(e.get('held_since'))}"
        if e.get("own"):
            return f"took over this rollout's lock from its earlier process ({held}): {_why_taken(e)}"
        return f"took over the lock of {e.get('service')} from rollout {e.get('previous_rollout')} ({held}): " \
               f"{_why_taken(e)}"
    if kind == "runner.attempt":
        text = f"run by worker {e.get('worker')} (attempt {e.get('attempt')} of workflow {e.get('workflow_id')})"
        previous = e.get("previous") or {}
        if previous.get("worker"):
            text += f", after worker {previous['worker']} (attempt {previous.get('attempt')})"
        if e.get("unwatched_since") and e.get("at"):
            text += f"; nobody watched for {e['at'] - e['unwatched_since']:.0f}s, not counted as bake"
        return text
    if kind == "runner.stopped":
        return f"STOPPED: {e.get('why')}; `guardrail resume` or `guardrail abort` continues it"
    if kind == "lock.lost":
        why = _why_taken(e, whose="this rollout's")
        return f"lock of {e.get('service')} taken over at {_when(e.get('taken_at'))} by rollout " \
               f"{e.get('by_rollout')} ({e.get('by_holder')}): {why}"
    if kind == "person.acted":
        return sentence(e)
    if kind == "rollout.interrupted":
        return (f"INTERRUPTED by {e.get('signal')} ({e.get('by')} on {e.get('host')}, pid {e.get('pid')}) while "
                f"{e.get('where')}")
    if kind == "rollout.error":
        return f"INTERNAL ERROR: {e.get('error')} (at {e.get('where')})" + (
            f" while rolling back {e['region']}" if e.get("region") else "")
    if kind == "state.verifying_recovery":
        return f"verifying recovery of {', '.join(e.get('regions') or [])} for {e.get('for')}"
    if kind == "recovery.relapsed":
        return f"recovery relapsed: {'; '.join(e.get('reasons') or [])}"
    if kind == "state.halted":
        return f"HALTED: {e.get('reason', '')}"
    if kind == "state.refused":
        return f"REFUSED: {e.get('reason', '')}"
    if kind == "state.promoted":
        return "promoted: every wave passed"
    if kind == "state.done":
        return f"rolled back and recovered ({e.get('reason', '')})" if e.get("reason") else "rolled back and recovered"
    if kind == "state.rollback_failed":
        return f"A PERSON IS NEEDED NOW: {e.get('reason', '')}"
    return None


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if epoch else "?"


def _why_taken(e: dict[str, Any], whose: str = "its") -> str:
    """Why a lock's holder could no longer hold it (``guardrail.state.locks.stale_reason``)."""
    if e.get("why") == "taken-over":
        return f"a person took it over: {e.get('reason')}"
    if e.get("why") == "runner-replaced":
        return f"{whose} runner {e.get('holder')} was replaced: Temporal gave the rollout to another worker"
    if e.get("why") == "process-gone":
        return f"{whose} process {e.get('pid')} is gone from {e.get('host')}"
    why = f"{whose} lease expired at {_when(e.get('lease_expires_at'))}"
    if e.get("pid_running"):  # same host, and something answers to that pid
        why += f" while pid {e.get('pid')} still runs on {e.get('host')} (a hung process, or the pid reused)"
    return why
