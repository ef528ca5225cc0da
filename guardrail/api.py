"""guardrail as a library: everything the CLI does, callable from Python.

>>> from guardrail.api import Guardrail
>>> result = Guardrail("state.db").rollout("examples/quickstart/rollout.yaml")
>>> result.outcome, result.exit_code
('rolled_back', <ExitCode.ROLLED_BACK: 1>)
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardrail.clock import SystemClock, VirtualClock
from guardrail.rollout.engine import Engine
from guardrail.rollout.preflight import failing_now
from guardrail.errors import OUTCOME_EXIT, ExitCode, GuardrailError, StateError, UsageError
from guardrail.plugin.interfaces import PluginContext
from guardrail.language.loader import Plan, load_plan
from guardrail.state.locks import Lease, check_resumable
from guardrail.plugin.manager import GuardrailPluginManager, get_plugin_manager
from guardrail.state.sqlite import SQLiteStore
from guardrail.state.ids import new_rollout_id
from guardrail.language.windows import frozen_by

LEASE_ENV = "GUARDRAIL_LOCK_LEASE"
DEFAULT_LEASE = 120.0


@dataclass
class RolloutResult:
    rollout_id: str
    service: str
    outcome: str
    state: str
    reason: str | None

    @property
    def exit_code(self) -> ExitCode:
        return OUTCOME_EXIT[self.outcome]


def _digest(plan: Plan) -> str:
    h = hashlib.sha256(plan.text.encode())
    for p in plan.policies:
        h.update(p.text.encode())
    return h.hexdigest()


class Guardrail:
    """One state file, one plugin manager. Not shared between processes: the store is."""

    def __init__(self, state: str | Path, *, pm: GuardrailPluginManager | None = None,
                 environ: dict[str, str] | None = None, concurrency: int = 16):
        self.state_path = Path(state).absolute()  # plugins resolve their own paths against the plan
        self.pm = pm or get_plugin_manager()
        self.environ = environ
        self.concurrency = concurrency
        # How long a lock outlives a process that stopped renewing it (killed, frozen).
        self.lease = float((environ or os.environ).get(LEASE_ENV, "") or DEFAULT_LEASE)
        self.store = SQLiteStore(self.state_path)

    def close(self) -> None:
        self.store.close()

    # -- plans -----------------------------------------------------------------------

    def load(self, plan_path: str | Path) -> Plan:
        plan = load_plan(plan_path, self.pm.registry, environ=self.environ)
        self.store.redactor.add(plan.secrets)
        return plan

    def _context(self, plan: Plan, clock: Any) -> PluginContext:
        return PluginContext(clock=clock, state_dir=self.state_path.parent, base_dir=plan.path.parent,
                             service=plan.rollout.service)

    def _engine(self, plan: Plan, rollout_id: str, clock: Any, lease: Lease, **kw: Any) -> Engine:
        return Engine(plan=plan, store=self.store, registry=self.pm.registry, hook=self.pm.hook, clock=clock,
                      rollout_id=rollout_id, context=self._context(plan, clock), lease=lease,
                      realtime=isinstance(clock, SystemClock), concurrency=self.concurrency, **kw)

    # -- commands --------------------------------------------------------------------

    def rollout(self, plan_path: str | Path, *, override_window: str | None = None,
                clock_start: float | None = None) -> RolloutResult:
        """Run a plan from the start. Raises ``LockedError`` (exit 5) when the service is busy."""
        plan = self.load(plan_path)
        rollout = plan.rollout
        now = time.time()
        if clock_start is not None and rollout.clock != "virtual":
            raise UsageError(f"a start time is for simulated time; {plan.path} runs on the real clock"
                             " (clock: real), which starts now")
        if rollout.clock == "virtual":
            clock: Any = VirtualClock(clock_start if clock_start is not None else math.floor(now / 60) * 60)
        else:
            clock = SystemClock()
        rollout_id = new_rollout_id(now)
        # The lock comes first: a refused second rollout leaves no trace. A crash from
        # here on leaves the lock to lease expiry (or the dead-process check) and the
        # store as it was, for `guardrail resume`.
        lease = Lease(self.store, rollout.service, rollout_id, duration=self.lease)
        lease.acquire()
        self.store.create_rollout({
            "id": rollout_id, "service": rollout.service, "version": rollout.change.version,
            "previous": rollout.change.previous, "plan_path": str(plan.path), "plan_digest": _digest(plan),
            "clock": rollout.clock, "clock_start": clock.now(),
        })
        engine = self._engine(plan, rollout_id, clock, lease)
        engine.journal.emit("rollout.started", service=rollout.service, change=rollout.change.model_dump(),
                    waves=[{"name": w.name, "regions": w.regions, "bake": w.bake} for w in rollout.waves],
                    plan=str(plan.path), policies=[str(p.path) for p in plan.policies], clock=rollout.clock)
        lease.record_takeover(engine.journal.emit)
        refusal = self._guards(plan, engine, clock, override_window)
        if refusal is not None:
            engine.transition("refused", outcome="halted", reason=refusal, finished=True)
            lease.release()
            return self._result(rollout_id)
        engine.run()
        return self._result(rollout_id)

    def _guards(self, plan: Plan, engine: Engine, clock: Any, override_window: str | None) -> str | None:
        rollout = plan.rollout
        frozen = frozen_by(rollout.windows.deny, rollout.windows.timezone, clock.now())
        if frozen and not override_window:
            return (f"change freeze {frozen!r} ({rollout.windows.timezone}) is in force; "
                    f"rerun with --override-window \"reason\" to proceed")
        if frozen:
            engine.journal.emit("window.overridden", window=frozen, reason=override_window)
        if rollout.preflight:
            failing = failing_now(plan, engine.evaluator, clock.now())
            engine.journal.emit("preflight", failing=failing)
            if failing:
                return "preflight: policies already fail before any deploy: " + "; ".join(failing)
        return None

    def resume(self, rollout_id: str, *, allow_changed_plan: bool = False,
               override_window: str | None = None) -> RolloutResult:
        """Continue a rollout that was halted, paused or killed; ``override_window``: the
        reason to deploy inside the change freeze in force now (recorded)."""
        row = self.store.rollout(rollout_id)
        rollout_id = row["id"]
        if row["finished_at"] and row["state"] != "rollback_failed":  # a failed rollback may be retried
            raise StateError(f"rollout {rollout_id} is finished ({row['state']}); nothing to resume")
        plan = self.load(row["plan_path"])
        changed = _digest(plan) != row["plan_digest"]
        if changed and not allow_changed_plan:
            raise StateError(f"the plan or its policies changed since rollout {rollout_id} started; restore them "
                             f"to resume, or roll back with the plan as it is now: `guardrail abort {rollout_id}`")
        check_resumable(self.store, row["service"], rollout_id)
        clock: Any
        if row["clock"] == "virtual":
            # Simulated time continues from the last thing that happened.
            clock = VirtualClock(self.store.last_time(rollout_id) or row["clock_start"])
        else:
            clock = SystemClock()
        lease = Lease(self.store, row["service"], rollout_id, duration=self.lease)
        lease.acquire(takeover_own=True)
        was_halted = row["state"] == "halted"
        engine = self._engine(plan, rollout_id, clock, lease, resumed_from_halt=was_halted,
                              resumed_at=self.store.last_time(rollout_id))
        if changed:
            engine.journal.emit("plan.changed", detail="rolling back with the plan and policies as they are now")
        if row["requests"].get("pause"):
            self.store.request(rollout_id, "pause", None)
            self.store.request(rollout_id, "pause_honoured", None)
        engine.journal.emit("rollout.resumed", previous_state=row["state"])
        frozen = frozen_by(plan.rollout.windows.deny, plan.rollout.windows.timezone, clock.now())
        if frozen and override_window:
            engine.journal.emit("window.overridden", window=frozen, reason=override_window)
        lease.record_takeover(engine.journal.emit)
        engine.run()
        return self._result(rollout_id)

    def abort(self, rollout_id: str, reason: str = "aborted by a person") -> RolloutResult | None:
        """Roll back what is deployed. A running process sees the request at its next
        tick (None is returned: that process reports the outcome); otherwise the
        rollback runs here, with the plan as it is now if it changed."""
        if self.abort_requested_of_running(rollout_id, reason):
            return None
        return self.resume(self.store.rollout(rollout_id)["id"], allow_changed_plan=True)

    def abort_requested_of_running(self, rollout_id: str, reason: str) -> bool:
        """Record the abort request; True when a live process runs the rollout (it will roll back)."""
        from guardrail.state.locks import HOST, process_alive

        row = self.store.rollout(rollout_id)
        if row["state"] in ("promoted", "done", "refused"):
            raise StateError(f"rollout {row['id']} is finished ({row['state']}); nothing to abort")
        self.store.request(row["id"], "abort", reason)
        lock = self.store.lock(row["service"])
        return bool(lock and lock["rollout_id"] == row["id"] and lock["pid"] > 0
                    and (lock["host"] != HOST or process_alive(lock["pid"])))

    def pause(self, rollout_id: str, reason: str = "paused by a person") -> None:
        row = self.store.rollout(rollout_id)
        if row["finished_at"]:
            raise StateError(f"rollout {row['id']} is finished ({row['state']})")
        self.store.request(row["id"], "pause", reason)
        self.store.request(row["id"], "pause_honoured", None)

    def approve(self, rollout_id: str, wave: str | None = None, *, resume: bool = True) -> RolloutResult | None:
        row = self.store.rollout(rollout_id)
        waiting = [e for e in self.store.events(row["id"], "state.halted") if e.get("waiting_for")]
        name = wave or (waiting[-1]["waiting_for"] if waiting else None)
        if name is None:
            raise UsageError(f"rollout {row['id']} is not waiting for an approval; name the wave with --wave")
        started = self.store.events(row["id"], "rollout.started")
        manual = [w["name"] for w in (started[0]["waves"] if started else [])]
        plan_waves = {w.name: w for w in self.load(row["plan_path"]).rollout.waves}
        manual = [n for n in manual if n in plan_waves and plan_waves[n].approval == "manual"]
        if name not in manual:
            raise UsageError(f"wave {name!r} of rollout {row['id']} does not wait for approval"
                             + (f"; waves with approval: manual: {', '.join(manual)}" if manual else ""))
        approvals = dict(row["requests"].get("approved") or {})
        approvals[name] = {"at": time.time()}
        self.store.request(row["id"], "approved", approvals)
        return self.resume(row["id"]) if resume and row["state"] == "halted" else None

    def unlock(self, service: str) -> dict[str, Any] | None:
        lock = self.store.lock(service)
        if lock is None:
            return None
        self.store.release_lock(service)
        return lock

    def status(self, rollout_id: str | None = None) -> dict[str, Any]:
        from guardrail.report.summary import summarize

        if rollout_id is None:
            rows = self.store.rollouts(limit=1)
            if not rows:
                raise UsageError(f"no rollouts in {self.state_path}")
            rollout_id = rows[0]["id"]
        return summarize(self.store, self.store.rollout(rollout_id)["id"])

    def history(self, service: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self.store.rollouts(service, limit)

    def _result(self, rollout_id: str) -> RolloutResult:
        row = self.store.rollout(rollout_id)
        from guardrail.state.states import outcome_of

        return RolloutResult(rollout_id, row["service"], outcome_of(row["state"]) or "halted", row["state"],
                             row["reason"])


__all__ = ["Guardrail", "RolloutResult", "GuardrailError"]
