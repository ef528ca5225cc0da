"""The rollout engine: waves, bake, verdicts, rollback, recovery — resumable.

The engine is one deterministic procedure. Every side effect (deploy, rollback,
action, notification) is a *step* with an idempotency key: the step is committed as
``started`` before the call and ``done``/``failed`` after it, and a finished step is
never repeated. Resuming a rollout killed at any instant is running the same
procedure again: finished steps are skipped, an unfinished one is repeated with the
same key (deployers are idempotent per key), stored ticks are replayed.

States: pending → deploying → baking → promoted | failed → rolling_back →
rolled_back → verifying_recovery → done; plus halted, rollback_failed, aborted.

A signal stops the procedure at its next safe point (``guardrail.rollout.interrupt``);
an unexpected error is contained: recorded, a decided rollback still run, the rollout
left halted (``guardrail.rollout.containment``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from guardrail.rollout.baselines import capture_baselines
from guardrail.rollout.findings import failure_reason, finding, rollback_targets, settle_by, tick_event, warning
from guardrail.rollout.evaluation import Evaluator
from guardrail.judging.coverage import describe
from guardrail.judging.decisions import Failure, Halt
from guardrail.incidents.lifecycle import IncidentTracker, Notifier
from guardrail.errors import LockLostError
from guardrail.plugin.interfaces import ActionRun, Outcome, PluginContext, Target
from guardrail.language.loader import Plan
from guardrail.state.journal import Journal
from guardrail.state.locks import Lease
from guardrail.language.model import Wave
from guardrail.language.types import format_duration, template_names
from guardrail.plugin.manager import Registry
from guardrail.incidents.notify import Announcer
from guardrail.rollout.freeze import freeze_before_wave
from guardrail.rollout.gates import ask_gate, refusal as gate_refusal
from guardrail.rollout.containment import contain
from guardrail.rollout.interrupt import Interrupted, Interruption, halt_interrupted
from guardrail.rollout.recovery import verify_recovery
from guardrail.state.protocol import Store
from guardrail.rollout.ticks import Phase



class Engine:
    def __init__(self, *, plan: Plan, store: Store, registry: Registry, hook: Any, clock: Any,
                 rollout_id: str, context: PluginContext, lease: Lease, realtime: bool,
                 resumed_from_halt: bool = False, resumed_at: float | None = None, concurrency: int = 16,
                 interruption: Interruption | None = None):
        self.interruption = interruption or Interruption()
        clock = self.interruption.wrap(clock)
        self.where = "starting"
        """What the rollout is doing, for an interruption's record."""
        self.plan, self.store, self.registry, self.hook, self.clock = plan, store, registry, hook, clock
        self.id, self.context, self.lease, self.realtime = rollout_id, context, lease, realtime
        self.resumed_from_halt = resumed_from_halt
        self.resumed_at = resumed_at
        """When resuming: the rollout clock's last recorded time before the gap."""
        self.rollout = plan.rollout
        self.announcer: Announcer | None = None
        self.journal = Journal(store, rollout_id, clock, guard=lease.check, observe=self._observe)
        self.evaluator = Evaluator(plan, registry, context, concurrency=concurrency)
        self.deployer = registry.build("deployers", self.rollout.deploy.plugin, self.rollout.deploy.with_, context)
        self.notifier = Notifier(store, registry, context, self.rollout.on_failure.incident_refs(), rollout_id=rollout_id,
                                 emit=self.journal.emit, notify_refs=self.rollout.notify)
        self.announcer = Announcer(store, self.rollout, rollout_id, self.notifier.send)
        self.started_at = clock.now()
        # Per-tick progress events are built only when someone listens (a terminal).
        self._listening = bool(hook.guardrail_on_event.get_hookimpls())

    # -- bookkeeping -----------------------------------------------------------------

    def _observe(self, event: dict[str, Any]) -> None:
        self.hook.guardrail_on_event(event=event)
        if self.announcer is not None:
            self.announcer.on_event(event)  # queued only: delivered in the background

    def transition(self, state: str, *, outcome: str | None = None, reason: str | None = None,
                   finished: bool = False, **data: Any) -> None:
        self.lease.check()
        self.where = f"{state} wave {data['wave']}" if data.get("wave") else state
        self.store.set_state(self.id, state, outcome=outcome, reason=reason, finished=finished)
        self.journal.emit(f"state.{state}", **({"reason": reason} if reason else {}), **data)

    def _side_effect(self, key: str, call, detail: dict[str, Any]) -> Outcome:
        """Run ``call`` once per key: committed as started before, finished after."""
        step = self.journal.step(key)
        if step is not None and step["status"] == "done":
            return Outcome(True, (step["detail"] or {}).get("outcome", "done earlier"))
        self.journal.begin(key, detail)  # the lease is checked first: a superseded process changes nothing
        try:
            outcome = call()
        except Exception as exc:  # a plugin bug is a failed step, reported, never a crash
            outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
        if not isinstance(outcome, Outcome):
            outcome = Outcome(bool(outcome), "")
        self.journal.finish(key, outcome.ok, {**detail, "outcome": outcome.detail,
                                              **({} if outcome.started else {"started": False})})
        return outcome

    def _requests(self) -> dict[str, Any]:
        return self.store.requests(self.id)

    # -- the procedure ---------------------------------------------------------------

    def run(self) -> str:
        """Run (or continue) the rollout; return its outcome."""
        try:
            self.notifier.start()  # what earlier runs left undelivered, in the background
            try:
                return self._run()
            except Interrupted as stop:  # at a safe point: halted, lock kept, said
                return halt_interrupted(self, stop)
            except LockLostError:
                raise  # another rollout holds the service: change nothing more
            except Exception as exc:  # a bug: recorded, a decided rollback still runs, then halted
                return contain(self, exc)
        finally:
            self.evaluator.close()
            self.notifier.close(self.rollout.on_failure.delivery_grace)  # bounded: undelivered updates stay spooled

    def _run(self) -> str:
        failed = self.store.step(self.id, "decision:failed")
        if failed is not None:
            return self._fail(Failure(**failed["detail"]))
        if self._requests().get("abort"):
            return self._fail(Failure(f"aborted: {self._requests()['abort']}", aborted=True))
        for wave in self.rollout.waves:
            if self.journal.done(f"wave:{wave.name}:passed"):
                continue
            approvals = self._requests().get("approved", {})
            if wave.approval == "manual" and wave.name not in approvals:
                return self._halt(f"wave {wave.name!r} waits for approval: run `guardrail approve {self.id}`",
                                  waiting_for=wave.name)
            self.interruption.check(f"about to deploy wave {wave.name}")
            if not all(self.journal.done(f"deploy:{r}") for r in wave.regions):  # a freeze stops deploys only
                freeze = freeze_before_wave(self.rollout, self.id, wave.name, self.clock.now(),
                                            self.store.events(self.id, "window.overridden"))
                if freeze is not None:
                    return self._halt(freeze.reason, window=freeze.window, wave=wave.name)
                if wave.gate is not None and not self.journal.done(f"gate:{wave.name}"):
                    answer = ask_gate(self.rollout, self.id, wave)
                    self.journal.emit("gate.answered", wave=wave.name, ok=answer.ok, detail=answer.detail)
                    if not answer.ok:
                        return self._halt(gate_refusal(wave, answer, self.id), gate=wave.name)
                    self.journal.mark(f"gate:{wave.name}", {"detail": answer.detail})
            result = self._take_wave(wave)
            if isinstance(result, Halt):
                return self._halt(result.reason)
            if isinstance(result, Failure):
                return self._fail(result)
            self._passed(wave)
        self.transition("promoted", outcome="promoted", finished=True)
        self.lease.release()
        return "promoted"

    def decide_wave(self, wave: Wave) -> Failure | Halt | None:
        """Capture one wave's baselines, deploy it and bake it, and return the decision
        (a ``Failure`` when a deploy or the bake failed, a ``Halt``, or None when it
        passed) without acting on it: no rollback, no incident, no state of the rollout's
        end, no lock released.

        For a backtest: with the ``noop`` deployer on a virtual clock set at a past time,
        it is what the engine would have decided then. Like ``run``, it is the engine's
        last use (its evaluator is closed).
        """
        try:
            capture_baselines(self.journal, self.evaluator, wave)
            failures = self._deploy_wave(wave)
            return _deploy_failure(wave, failures) if failures else self._bake(wave)
        finally:
            self.evaluator.close()

    def decide_plan(self, *, last: str | None = None) -> tuple[Wave | None, Failure | Halt | None]:
        """Every wave in turn as ``run`` takes it (baselines, deploy, bake; a passed wave
        is marked and announced), up to the first decision that is not a pass, returned
        with its wave (``(None, None)``: every wave passed, or every wave up to ``last``),
        without acting on it.

        For a replay of a whole plan over history (``guardrail.tools.replay``): no
        approval, gate or change freeze is asked (a replay asks what the judgement would
        have been), and the failure path is ``record_rollback``'s. Like ``run``, it is
        the engine's last use (its evaluator is closed).
        """
        try:
            for wave in self.rollout.waves:
                result = self._take_wave(wave)
                if result is not None:
                    return wave, result
                self._passed(wave)
                if wave.name == last:
                    break
            return None, None
        finally:
            self.evaluator.close()

    def record_rollback(self, failure: Failure) -> list[str]:
        """A decided failure's rollback through the deployer, as ``run`` would start it
        (the decision stored first, then every target in reverse wave order), without
        actions, incident or recovery verified: the rollout is left ``rolled_back`` (the
        caller says how it ends). Returns the regions rolled back."""
        self.journal.mark("decision:failed", asdict(failure))
        self.transition("aborted" if failure.aborted else "failed", reason=failure.reason, findings=failure.findings)
        targets = self._rollback_targets(failure)
        self.transition("rolling_back", regions=targets, reason=failure.reason)
        for region in targets:
            self._rollback_region(region)
        self.transition("rolled_back", regions=targets, reason=failure.reason)
        return targets

    def _take_wave(self, wave: Wave) -> Failure | Halt | None:
        """Capture a wave's baselines, deploy it and bake it: the wave's decision (a
        ``Failure`` when a deploy or the bake failed, a ``Halt``, None when it passed),
        not yet acted on."""
        capture_baselines(self.journal, self.evaluator, wave)
        self.transition("deploying", wave=wave.name, regions=wave.regions)
        failures = self._deploy_wave(wave)
        # A deploy cut short by the signal (Ctrl-C reaches the deploy tool too) is not a
        # verdict: its step is not done, so the resume repeats it with its key.
        self.interruption.check(f"deploying wave {wave.name}")
        return _deploy_failure(wave, failures) if failures else self._bake(wave)

    def _passed(self, wave: Wave) -> None:
        self.journal.mark(f"wave:{wave.name}:passed")
        self.journal.emit("wave.passed", wave=wave.name)

    def _halt(self, reason: str, **data: Any) -> str:
        self.transition("halted", outcome="halted", reason=reason, **data)
        self.lease.keep(f"halted rollout {self.id}")
        return "halted"

    # -- deploy ----------------------------------------------------------------------

    def deployed_regions(self) -> list[str]:
        """Regions whose deploy was at least started, in wave order."""
        return self.journal.started_regions([r for w in self.rollout.waves for r in w.regions])

    def _target(self, region: str, action: str) -> Target:
        return Target(service=self.rollout.service, region=region, version=self.rollout.change.version,
                      previous=self.rollout.change.previous, action=action, key=f"{self.id}:{action}:{region}",
                      vars=self.rollout.region_vars(region))

    def _deploy_region(self, region: str) -> Outcome:
        def call() -> Outcome:
            self.journal.emit("region.deploying", region=region, version=self.rollout.change.version, persist=False)
            return self.deployer.deploy(self._target(region, "deploy"))

        if self.journal.done(f"deploy:{region}"):  # deployed before a resume: already in the audit trail
            return Outcome(True, "deployed earlier")
        outcome = self._side_effect(f"deploy:{region}", call, {"region": region})
        self.journal.emit("region.deployed" if outcome.ok else "region.deploy_failed", region=region, detail=outcome.detail)
        return outcome

    def _deploy_wave(self, wave) -> list[dict[str, Any]]:
        if wave.parallel and len(wave.regions) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=len(wave.regions), thread_name_prefix="guardrail-deploy") as pool:
                outcomes = dict(zip(wave.regions, pool.map(self._deploy_region, wave.regions)))
        else:
            outcomes = {}
            for region in wave.regions:
                outcomes[region] = self._deploy_region(region)
                if not outcomes[region].ok or self.interruption.requested:
                    break
        return [{"region": r, "check": "deploy", "policy": "-", "reason": o.detail or "deploy failed",
                 "wave": wave.name, "started": o.started} for r, o in outcomes.items() if not o.ok]

    # -- baselines and bake ----------------------------------------------------------

    def _watch(self, before) -> None:
        """Between ticks: stop if the lock was lost; honour pause/abort requests (the lease
        renews itself)."""
        self.lease.check()
        self.interruption.check(self.where)
        requests = self._requests()
        if requests.get("abort"):
            raise _Interrupted(Failure(f"aborted: {requests['abort']}", aborted=True))
        if requests.get("pause") and not requests.get("pause_honoured"):
            self.store.request(self.id, "pause_honoured", True)
            raise _Interrupted(Halt(f"paused: {requests['pause']}"))

    def _bake(self, wave) -> Failure | Halt | None:
        name = f"bake:{wave.name}"
        step = self.store.step(self.id, name)
        required = wave.bake * wave.min_coverage
        extension = wave.bake if wave.max_extension is None else wave.max_extension
        unwatched = list(((step or {}).get("detail") or {}).get("unwatched") or [])
        if step is None:
            start = self.clock.now()
            deadline = start + wave.bake + extension
            self.store.start_step(self.id, name, start, {"start": start, "deadline": deadline})
            self.transition("baking", wave=wave.name, bake=format_duration(wave.bake))
        else:
            start = step["detail"]["start"]
            deadline = step["detail"].get("deadline", start + wave.bake + extension)
            if self.realtime and self.resumed_at is not None:
                # Time while halted, paused or dead gathered no evidence: it does not
                # count as bake. The bake's start moves by that gap, durably.
                gap = max(0.0, self.clock.now() - self.resumed_at)
                if gap > 0:
                    start += gap
                    deadline += gap
                    unwatched.append([self.resumed_at, self.clock.now()])  # shown with the coverage
            self.transition("baking", wave=wave.name, bake=format_duration(wave.bake), resumed=True)  # not `deploying`
        end = start + wave.bake
        regions = self.deployed_regions()
        phase = Phase(rollout_id=self.id, name=name, start=start, items=self.evaluator.items(regions),
                      evaluator=self.evaluator, store=self.store, clock=self.clock,
                      baselines=self.store.baselines(self.id), realtime=self.realtime,
                      reset_streaks=self.resumed_from_halt)
        if step is not None and self.resumed_from_halt:
            # A person resumed: the evidence still missing gets its time again, plus the
            # extension; what was covered before stays counted, nothing more.
            missing = max(phase.lacking(required).values(), default=0.0)
            deadline = max(deadline, self.clock.now() + missing + extension)
        if step is not None:
            self.store.update_step_detail(self.id, name, _bake_detail(start, deadline, unwatched))
        extend_from = max(end, self.clock.now())
        try:
            for at, batch in phase.run(before=self._watch):
                if self._listening:
                    self.journal.emit("bake.tick", persist=False, **tick_event(wave.name, phase, at, end))
                for item in phase.warned:  # told and stored; a warning never decides the wave
                    self.journal.emit("check.warned", **warning(wave.name, phase, item))
                failing = [i for i in batch if phase.states[i].last.status == "fail"]
                if failing:
                    return Failure(failure_reason(phase, failing),
                                   [finding(self.evaluator, self.rollout, phase, i) for i in failing],
                                   sorted({self.rollout.wave_of(i.region).name for i in failing} | {wave.name}))
                stuck = [i for i in batch if phase.states[i].inconclusive_streak
                         >= self.evaluator.policies[i.policy].inconclusive_limit]
                if stuck:
                    reason = "no evidence: " + "; ".join(f"{i}: {phase.states[i].last.reason}" for i in stuck[:5])
                    if any(self.evaluator.policies[i.policy].on_inconclusive == "fail" for i in stuck):
                        return Failure(reason, [finding(self.evaluator, self.rollout, phase, i) for i in stuck],
                                       sorted({self.rollout.wave_of(i.region).name for i in stuck} | {wave.name}))
                    return Halt(reason)
                if phase.next_time() > end:
                    lacking = phase.lacking(required)
                    # Late samples at the end of a covered bake do not hold it: the bake
                    # is covered, and they are not a breach nor a source that cannot
                    # answer (those count in the streak; a breach held by for: is pending).
                    unclean = [i for i in phase.unclean() if not (
                        phase.states[i].last is not None and phase.states[i].last.status == "inconclusive"
                        and phase.states[i].inconclusive_streak == 0 and i not in lacking)]
                    if not unclean and not lacking:
                        break
                    # The bake goes on while covered time is short of the bake (up to
                    # `max_extension`), and while a breach is holding or evidence is
                    # missing, each for as long as its own check could still settle: a
                    # breach that starts during the extension gets its whole `for:` too.
                    if lacking and phase.next_time() > deadline:
                        return Halt("bake not covered by fresh evidence: " + "; ".join(
                            describe(str(i), phase.coverage[i], required) for i in list(lacking)[:5]))
                    overdue = [i for i in unclean if i not in lacking and phase.next_time() > (
                        deadline if phase.states[i].last is not None and phase.states[i].last.status == "inconclusive"
                        else settle_by(self.evaluator, phase, i, extend_from))]
                    if overdue:
                        return Halt("bake ended without clean evidence for " + ", ".join(map(str, overdue[:5])))
        except _Interrupted as interrupted:
            return interrupted.result
        self.store.finish_step(self.id, name, True, self.clock.now(), _bake_detail(start, deadline, unwatched))
        self.journal.emit("bake.passed", wave=wave.name, regions=regions,
                          covered={str(i): c.covered for i, c in phase.coverage.items() if c.applies})
        return None

    # -- failure path ----------------------------------------------------------------

    def _fail(self, failure: Failure) -> str:
        if not self.journal.done("decision:failed"):
            self.journal.mark("decision:failed", asdict(failure))
            self.transition("aborted" if failure.aborted else "failed", reason=failure.reason,
                            findings=failure.findings)
        targets = self._rollback_targets(failure)
        incident = IncidentTracker(self.journal, self.rollout, self.notifier, failure, targets)
        incident.record()  # "investigating", in the store only
        self.transition("rolling_back", regions=targets, reason=failure.reason)
        incident.identified()  # queued: delivered in the background while the rollback runs
        broken = [r for r in targets if not self._rollback_region(r).ok]
        if broken:  # a rollback tool killed by the same Ctrl-C failed for that reason: retried on resume
            self.interruption.check(f"rolling back {', '.join(targets)}")
            reason = f"rollback failed in {', '.join(broken)}: a person is needed now"
            incident.needs_person("rollback-failed", reason)
            self.transition("rollback_failed", outcome="rollback_failed", reason=reason, finished=True)
            self.lease.keep(f"rollback failed for rollout {self.id}")
            return "rollback_failed"
        self.transition("rolled_back", regions=targets, reason=failure.reason)
        self.interruption.check(f"rolled back {', '.join(targets)}, before the remediation actions")
        actions = self._actions("failure", self.rollout.on_failure.actions, targets)
        incident.monitoring(actions)
        self.transition("verifying_recovery", regions=targets, reason=failure.reason,
                        **{"for": format_duration(self.rollout.verify_recovery.for_)})
        recovered, detail = verify_recovery(self.journal, self.rollout, self.evaluator, failure, targets, incident,
                                             realtime=self.realtime, renew=self._renew)
        if not recovered:
            reason = f"recovery not achieved: {detail}; a person is needed now"
            incident.needs_person("recovery-failed", reason)
            self.transition("rollback_failed", outcome="rollback_failed", reason=reason, finished=True)
            self.lease.keep(f"recovery failed for rollout {self.id}")
            return "rollback_failed"
        actions += self._actions("recovery", self.rollout.on_recovery.actions, targets)
        incident.resolved(actions, detail)
        self.transition("done", outcome="rolled_back", reason=failure.reason, finished=True)
        self.lease.release()
        return "rolled_back"

    def _renew(self) -> None:
        self.lease.renew()
        self.interruption.check(self.where)

    def _rollback_targets(self, failure: Failure) -> list[str]:
        return rollback_targets(self.rollout, self.deployed_regions(), failure)

    def _rollback_region(self, region: str) -> Outcome:
        # A rollback that failed earlier is not "done": running the procedure again
        # (abort, resume) retries it with the same idempotency key.
        outcome = self._side_effect(f"rollback:{region}", lambda: self.deployer.rollback(self._target(region, "rollback")),
                                    {"region": region})
        self.journal.emit("region.rolled_back" if outcome.ok else "region.rollback_failed", region=region,
                  detail=outcome.detail)
        return outcome

    def _actions(self, phase: str, refs, regions: list[str]) -> list[dict[str, Any]]:
        results = []
        for index, ref in enumerate(refs):
            action = self.registry.build("actions", ref.plugin, ref.with_, self.context)
            per_region = any("region" in template_names(t) for t in action.templates())
            for region in (regions if per_region else [None]):
                variables = self.rollout.region_vars(region) if region else {
                    **self.rollout.vars, "service": self.rollout.service,
                    "version": self.rollout.change.version, "previous": self.rollout.change.previous}
                run = ActionRun(rollout_id=self.id, service=self.rollout.service, phase=phase, region=region,
                                key=f"{self.id}:action:{phase}:{index}:{region or '-'}", vars=variables)
                outcome = self._side_effect(f"action:{phase}:{index}:{region or '-'}", lambda: action.run(run),
                                            {"plugin": ref.plugin, "region": region})
                result = {"phase": phase, "plugin": ref.plugin, "region": region, "ok": outcome.ok,
                          "detail": outcome.detail}
                self.journal.emit("action.ran", **result)
                results.append(result)
        return results


class _Interrupted(Exception):
    def __init__(self, result: Failure | Halt):
        self.result = result


def _deploy_failure(wave: Wave, failures: list[dict[str, Any]]) -> Failure:
    return Failure(f"deploy failed in {', '.join(f['region'] for f in failures)}", failures, [wave.name])


def _bake_detail(start: float, deadline: float, unwatched: list[list[float]]) -> dict[str, Any]:
    """A bake step's detail; ``unwatched``: the ``[from, to]`` spans of real time nobody
    watched (the runner was halted or dead), not counted as bake."""
    return {"start": start, "deadline": deadline, **({"unwatched": unwatched} if unwatched else {})}
