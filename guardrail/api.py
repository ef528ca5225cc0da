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
from guardrail.rollout.preflight import refusal
from guardrail.rollout.readiness import check_ready
from guardrail.errors import OUTCOME_EXIT, ExitCode, GuardrailError, StateError, UsageError
from guardrail.rollout.interrupt import Interruption
from guardrail.rollout.takeover import refuse_over_stale, refuse_superseded
from guardrail.state import people
from guardrail.plugin.interfaces import PluginContext
from guardrail.language.loader import Plan, load_plan
from guardrail.state.locks import Lease, Takeover, check_resumable
from guardrail.plugin.manager import GuardrailPluginManager, get_plugin_manager
from guardrail.state.open import is_url, open_store
from guardrail.state.protocol import Store
from guardrail.state.ids import new_rollout_id
from guardrail.language.windows import frozen_by

LEASE_ENV = "GUARDRAIL_LOCK_LEASE"
DEFAULT_LEASE = 120.0
RUNNER_REPLACED = "runner-replaced"
"""Why a lock passed to a new runner of the same rollout (see ``Guardrail.resume``)."""


@dataclass
class RolloutResult:
    rollout_id: str
    service: str
    outcome: str
    state: str
    reason: str | None
    earlier: bool = False
    """True when the rollout had finished before this call: nothing was run, this is its result."""

    @property
    def exit_code(self) -> ExitCode:
        return OUTCOME_EXIT[self.outcome]


def plan_digest(plan: Plan) -> str:
    """The digest of a plan and its policies: a rollout resumes only with the same ones."""
    return _digest(plan)


def _digest(plan: Plan) -> str:
    h = hashlib.sha256(plan.text.encode())
    for p in plan.policies:
        h.update(p.text.encode())
    return h.hexdigest()


class Guardrail:
    """One store, one plugin manager. Not shared between processes: the store is.

    ``state``: a SQLite file's path, a ``postgresql://`` URL, or an open ``Store``."""

    def __init__(self, state: str | Path | Store, *, pm: GuardrailPluginManager | None = None,
                 environ: dict[str, str] | None = None, concurrency: int = 16,
                 interruption: Interruption | None = None):
        if isinstance(state, (str, Path)) and not is_url(state):
            state = Path(state).absolute()  # plugins resolve their own paths against the plan
        self.pm = pm or get_plugin_manager()
        self.environ = environ
        self.concurrency = concurrency
        # How long a lock outlives a process that stopped renewing it (killed, frozen).
        self.lease = float((environ or os.environ).get(LEASE_ENV, "") or DEFAULT_LEASE)
        self.store = open_store(state, environ=environ)
        self.state_path = state if isinstance(state, Path) else self.store.location
        self.interruption = interruption
        """Set (e.g. by a signal handler) to stop a running rollout at its next safe point."""

    def close(self) -> None:
        self.store.close()

    # -- plans -----------------------------------------------------------------------

    def load(self, plan_path: str | Path) -> Plan:
        plan = load_plan(plan_path, self.pm.registry, environ=self.environ)
        self.store.redactor.add(plan.secrets)
        return plan

    def _context(self, plan: Plan, clock: Any, rollout_id: str = "") -> PluginContext:
        return PluginContext(clock=clock, state_dir=self.store.state_dir, base_dir=plan.path.parent,
                             service=plan.rollout.service, redact=self.store.redactor.redact, rollout_id=rollout_id)

    def _engine(self, plan: Plan, rollout_id: str, clock: Any, lease: Lease, **kw: Any) -> Engine:
        return Engine(plan=plan, store=self.store, registry=self.pm.registry, hook=self.pm.hook, clock=clock,
                      rollout_id=rollout_id, context=self._context(plan, clock, rollout_id), lease=lease,
                      realtime=isinstance(clock, SystemClock), concurrency=self.concurrency,
                      interruption=self.interruption, **kw)

    # -- commands --------------------------------------------------------------------

    def rollout(self, plan_path: str | Path, *, override_window: str | None = None,
                clock_start: float | None = None, by: str | None = None,
                take_over: str | None = None, rollout_id: str | None = None) -> RolloutResult:
        """Run a plan from the start. Raises ``LockedError`` (exit 5) when the service is busy,
        ``InterruptedRolloutError`` (exit 5) when an interrupted or dead rollout of it holds
        the service, unless ``take_over`` gives a person's reason to start over it.

        ``rollout_id``: the id to give the rollout, chosen by whoever submitted it (a
        runtime that must name it before it runs); default a new one."""
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
        check_ready(plan, self.pm.registry, self._context(plan, clock))  # exit 2 before anything happens
        rollout_id = rollout_id or new_rollout_id(now)
        # The lock comes first: a refused second rollout leaves no trace. A crash from
        # here on leaves the lock to lease expiry (or the dead-process check) and the
        # store as it was, for `guardrail resume`.
        refuse_over_stale(self.store, rollout.service, rollout_id, take_over)
        lease = Lease(self.store, rollout.service, rollout_id, duration=self.lease)
        lease.acquire(take_over=take_over)
        self.store.create_rollout({
            "id": rollout_id, "service": rollout.service, "version": rollout.change.version,
            "previous": rollout.change.previous, "plan_path": str(plan.path), "plan_digest": _digest(plan),
            "clock": rollout.clock, "clock_start": clock.now(),
        })
        engine = self._engine(plan, rollout_id, clock, lease)
        engine.journal.emit("rollout.started", service=rollout.service, change=rollout.change.model_dump(),
                    waves=[{"name": w.name, "regions": w.regions, "bake": w.bake, "min_coverage": w.min_coverage}
                           for w in rollout.waves],
                    plan=str(plan.path), policies=[str(p.path) for p in plan.policies], clock=rollout.clock)
        lease.record_takeover(engine.journal.emit)
        if take_over and lease.took_over is not None:
            people.record(self.store, rollout_id, people.act("take-over", by, take_over, environ=self.environ,
                                                             previous_rollout=lease.took_over.rollout_id))
        refusal = self._guards(plan, engine, clock, override_window, by)
        if refusal is not None:
            engine.transition("refused", outcome="halted", reason=refusal, finished=True)
            lease.release()
            return self.result(rollout_id)
        engine.run()
        return self.result(rollout_id)

    def _guards(self, plan: Plan, engine: Engine, clock: Any, override_window: str | None,
                by: str | None = None) -> str | None:
        rollout = plan.rollout
        frozen = frozen_by(rollout.windows.deny, rollout.windows.timezone, clock.now())
        if frozen and not override_window:
            return (f"change freeze {frozen!r} ({rollout.windows.timezone}) is in force; "
                    f"rerun with --override-window \"reason\" to proceed")
        if frozen:
            who = people.identity(by, self.environ)
            engine.journal.emit("window.overridden", window=frozen, reason=override_window, by=who)
            people.record(self.store, engine.id, people.act("override-window", who, override_window, window=frozen))
        if rollout.preflight:
            refused, failing, missing = refusal(plan, engine.evaluator, clock.now())
            engine.journal.emit("preflight", failing=failing, missing=missing)
            if refused:
                return refused
        return None

    def resume(self, rollout_id: str, *, allow_changed_plan: bool = False, by: str | None = None,
               reason: str | None = None, take_over: str | None = None, record: bool = True,
               takeover_by: str | None = None, override_window: str | None = None) -> RolloutResult:
        """Continue a rollout that was halted, paused or killed. A finished rollout is not
        run again: its result is returned (``earlier`` set). A superseded rollout (another
        rollout took its lock over) raises ``SupersededError`` (exit 5) unless
        ``take_over`` gives a person's reason to take the service back.

        ``override_window``: the reason to deploy inside the change freeze in force now
        (recorded).

        ``takeover_by``: a runtime that knows the process running this rollout is gone (a
        retried Temporal activity) names the new runner. The lock passes to it whatever
        the old lease says, recorded as ``lock.taken_over`` (why: ``runner-replaced``);
        requests a person made (pause) stay pending for the engine to honour."""
        row = self.store.rollout(rollout_id)
        rollout_id = row["id"]
        if row["finished_at"] and row["state"] != "rollback_failed":  # a failed rollback may be retried
            result = self.result(rollout_id)
            result.earlier = True
            return result
        refuse_superseded(self.store, row, take_over)
        refuse_over_stale(self.store, row["service"], rollout_id, take_over)
        plan = self.load(row["plan_path"])
        changed = _digest(plan) != row["plan_digest"]
        if changed and not allow_changed_plan:
            raise StateError(f"the plan or its policies changed since rollout {rollout_id} started; restore them "
                             f"to resume, or roll back with the plan as it is now: `guardrail abort {rollout_id}`")
        if takeover_by is None:
            check_resumable(self.store, row["service"], rollout_id)
        own = self.store.lock(row["service"])
        clock: Any
        if row["clock"] == "virtual":
            # Simulated time continues from the last thing that happened.
            clock = VirtualClock(self.store.last_time(rollout_id) or row["clock_start"])
        else:
            clock = SystemClock()
        lease = Lease(self.store, row["service"], rollout_id, duration=self.lease)
        lease.acquire(takeover_own=True, take_over=take_over)
        if takeover_by is not None and lease.took_over is None and own is not None \
                and own["rollout_id"] == rollout_id and own["holder"] != lease.holder and own["pid"] != 0:
            lease.took_over = Takeover.of(row["service"], own, RUNNER_REPLACED)
        if take_over:
            people.record(self.store, rollout_id, people.act("take-over", by, take_over, environ=self.environ))
        elif record and takeover_by is None:
            people.record(self.store, rollout_id, people.act("resume", by, reason, environ=self.environ))
        was_halted = row["state"] == "halted"
        engine = self._engine(plan, rollout_id, clock, lease, resumed_from_halt=was_halted,
                              resumed_at=self.store.last_time(rollout_id))
        if changed:
            engine.journal.emit("plan.changed", detail="rolling back with the plan and policies as they are now")
        if row["requests"].get("pause") and takeover_by is None:
            self.store.request(rollout_id, "pause", None)
            self.store.request(rollout_id, "pause_honoured", None)
        engine.journal.emit("rollout.resumed", previous_state=row["state"],
                            **({"runner": takeover_by} if takeover_by else {}))
        frozen = frozen_by(plan.rollout.windows.deny, plan.rollout.windows.timezone, clock.now())
        if frozen and override_window:
            who = people.identity(by, self.environ)
            engine.journal.emit("window.overridden", window=frozen, reason=override_window, by=who)
            people.record(self.store, rollout_id, people.act("override-window", who, override_window, window=frozen))
        lease.record_takeover(engine.journal.emit)
        engine.run()
        return self.result(rollout_id)

    def abort(self, rollout_id: str, reason: str = "aborted by a person", *, by: str | None = None,
              detach: bool = False) -> RolloutResult | None:
        """Roll back what is deployed. A running process sees the request at its next
        tick (None is returned: that process reports the outcome); otherwise the
        rollback runs here, with the plan as it is now if it changed. ``detach``: only
        record the request (None is returned); the running process, or a later
        ``resume``, carries it out."""
        if self.abort_requested_of_running(rollout_id, reason, by=by) or detach:
            return None
        return self.resume(self.store.rollout(rollout_id)["id"], allow_changed_plan=True, record=False)

    def abort_requested_of_running(self, rollout_id: str, reason: str, *, by: str | None = None) -> bool:
        """Record the abort request; True when a live process runs the rollout (it will roll back)."""
        from guardrail.state.locks import HOST, process_alive

        row = self.store.rollout(rollout_id)
        if row["state"] in ("promoted", "done", "refused"):
            hint = f"; `guardrail rollback {row['id']}` rolls a promoted release back" if row["state"] == "promoted" else ""
            raise StateError(f"rollout {row['id']} is finished ({row['state']}); nothing to abort{hint}")
        refuse_superseded(self.store, row, None)
        entry = people.act("abort", by, reason, environ=self.environ)
        self.store.request(row["id"], "abort", reason)
        people.record(self.store, row["id"], entry)
        lock = self.store.lock(row["service"])
        # A process on another runner is known alive only by its lease.
        return bool(lock and lock["rollout_id"] == row["id"] and lock["pid"] > 0
                    and (process_alive(lock["pid"]) if lock["host"] == HOST else lock["expires_at"] > time.time()))

    def pause(self, rollout_id: str, reason: str = "paused by a person", *, by: str | None = None) -> None:
        row = self.store.rollout(rollout_id)
        if row["finished_at"]:
            raise StateError(f"rollout {row['id']} is finished ({row['state']})")
        entry = people.act("pause", by, reason, environ=self.environ)
        self.store.request(row["id"], "pause", reason)
        self.store.request(row["id"], "pause_honoured", None)
        people.record(self.store, row["id"], entry)

    def rollback(self, rollout_id: str, reason: str = "rolled back by a person", *,
                 by: str | None = None) -> RolloutResult:
        """Roll a promoted release back: every region to ``previous``, in reverse wave
        order, with the steps, idempotency, incident and recovery verification of a
        failure. Refused when a later rollout of the service exists (rolling this one
        back would undo that one too)."""
        from guardrail.rollout.takeover import check_rollback

        row = self.store.rollout(rollout_id)
        progress = check_rollback(self.store, row)
        if progress == "done":  # rolled back earlier by this very command
            result = self.result(row["id"])
            result.earlier = True
            return result
        if progress == "continue":
            return self.resume(row["id"], allow_changed_plan=True, by=by, reason=reason)
        entry = people.act("rollback", by, reason, environ=self.environ)
        people.record(self.store, row["id"], entry)
        self.store.request(row["id"], "rollback", entry)
        self.store.request(row["id"], "abort", f"rollback of the promoted release: {reason}")
        self.store.reopen(row["id"])
        return self.resume(row["id"], allow_changed_plan=True, record=False)

    def approve(self, rollout_id: str, wave: str | None = None, *, resume: bool = True, by: str | None = None,
                reason: str | None = None) -> RolloutResult | None:
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
        entry = people.act("approve", by, reason, environ=self.environ, wave=name)
        approvals = dict(row["requests"].get("approved") or {})
        approvals[name] = {"at": time.time(), "by": entry["by"], "reason": reason}
        self.store.request(row["id"], "approved", approvals)
        people.record(self.store, row["id"], entry)
        return self.resume(row["id"], record=False) if resume and row["state"] == "halted" else None

    def unlock(self, service: str, *, by: str | None = None, reason: str | None = None) -> dict[str, Any] | None:
        from guardrail.errors import NotFound

        lock = self.store.lock(service)
        if lock is None:
            return None
        self.store.release_lock(service)
        try:
            holder = self.store.rollout(lock["rollout_id"])
        except NotFound:
            holder = None
        if holder is not None and holder["id"] == lock["rollout_id"]:
            people.record(self.store, holder["id"], people.act("unlock", by, reason, environ=self.environ,
                                                               holder=lock["holder"]))
        return lock

    def status(self, rollout_id: str | None = None) -> dict[str, Any]:
        from guardrail.report.summary import summarize

        if rollout_id is None:
            rows = self.store.rollouts(limit=1)
            if not rows:
                raise UsageError(f"no rollouts in {self.store.location}")
            rollout_id = rows[0]["id"]
        return summarize(self.store, self.store.rollout(rollout_id)["id"])

    def history(self, service: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self.store.rollouts(service, limit)

    def result(self, rollout_id: str) -> RolloutResult:
        """Where a rollout stands now, as the result of the command that last drove it."""
        row = self.store.rollout(rollout_id)
        from guardrail.state.states import outcome_of

        return RolloutResult(rollout_id, row["service"], outcome_of(row["state"]) or "halted", row["state"],
                             row["reason"])


__all__ = ["Guardrail", "RolloutResult", "GuardrailError"]
