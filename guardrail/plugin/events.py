"""Every kind of event guardrail emits, with what it means: the one list the
``guardrail_on_event`` hookspec documents and a test checks against what the code emits.

An event is a JSON-serialisable dict with ``rollout_id``, ``kind``, ``at`` (epoch
seconds on the rollout's clock) and the fields named here.
"""

from __future__ import annotations

STATES = ("deploying", "baking", "promoted", "failed", "aborted", "rolling_back", "rolled_back",
          "verifying_recovery", "done", "halted", "rollback_failed", "refused")
"""The states of a rollout; entering one emits ``state.<name>`` (with ``reason`` when it has one)."""

EVENTS: dict[str, str] = {
    "rollout.started": "a rollout began: service, change, waves, plan digest",
    "rollout.resumed": "a halted, paused or interrupted rollout continues: previous_state",
    "preflight": "the policies were judged before any deploy: failing (a list of reasons)",
    "plan.changed": "the plan or its policies changed since the rollout started: detail",
    "window.overridden": "a change freeze was overridden (at the start, or by a resume inside it): window, reason, by",
    "gate.answered": "a wave's outside gate was asked before the wave deploys: wave, ok, detail",
    "region.deploying": "a deploy is being called: region, version (not stored)",
    "region.deployed": "a region runs the new version: region, detail",
    "region.deploy_failed": "a region's deploy failed: region, detail",
    "region.rolled_back": "a region runs the previous version again: region, detail",
    "region.rollback_failed": "a region's rollback failed: region, detail",
    "bake.tick": "one evaluation of a wave's checks: wave, remaining, checks (not stored; for progress displays)",
    "check.warned": "a check's warning condition started to hold (warn_if, or a check marked mode: warn), held for "
                    "its for:; the wave goes on: wave, region, policy, check, value, threshold, reason",
    "bake.passed": "a wave's bake ended with clean evidence: wave, regions",
    "wave.passed": "a wave was promoted: wave",
    "action.ran": "a remediation action ran: phase, plugin, region, ok, detail",
    "recovery.relapsed": "a check failed again while recovery was verified: items, reasons",
    "incident.identified": "an incident update was queued (the rollback started, or a person is needed): incident, "
                           "revision, sinks, note",
    "incident.monitoring": "an incident update was queued (rolled back, recovery being verified): incident, "
                           "revision, sinks, note",
    "incident.resolved": "an incident update was queued (recovered): incident, revision, sinks, note",
    "incident.delivered": "a sink accepted an incident update: incident, status, sink (from a delivery thread)",
    "incident.delivery_failed": "a sink refused or could not be reached: incident, status, sink, error, spooled, "
                                "rejected (from a delivery thread)",
    "rollout.interrupted": "SIGINT or SIGTERM stopped the driving process at a safe point: where, signal, by, host, pid",
    "rollout.error": "an unexpected error stopped the procedure; the rollout halted (or still rolled back): error, where",
    "person.acted": "a person paused, resumed, approved, aborted, unlocked, took over or overrode a window: action, "
                    "by, reason",
    "runner.attempt": "a Temporal worker began an attempt at the rollout: worker, host, pid, attempt",
    "runner.stopped": "a Temporal worker stopped running the rollout: worker, host, pid, why",
    "lock.taken_over": "this rollout took over a stale lock: previous_rollout, previous_holder, why, own",
    "lock.lost": "this rollout's lock was taken over by another: by_rollout, by_holder, why",
    **{f"state.{state}": f"the rollout entered {state!r}" for state in STATES},
}


def describe_events() -> str:
    """The list as reStructuredText bullets, for the hookspec's docstring."""
    return "\n".join(f"    - ``{kind}``: {meaning}" for kind, meaning in EVENTS.items())
