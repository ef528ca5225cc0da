"""``guardrail backtest PLAN.yaml``: a whole rollout plan replayed over history.

Why: "would this plan have stopped last Tuesday's incident, when, on which check, and
how many regions would it have exposed?" is answered by history, if the plan's waves
are replayed as a rollout would run them: the canary bakes, the next wave deploys
when the canary passed while the canary stays watched, regions move from control to
deployed, and a failure rolls back every deployed region.

The replay is the engine's own procedure (``Engine.decide_plan``) on a virtual clock
over the plan's sources (a real Prometheus's history): the same baselines, judge,
``for:`` holds, freshness and coverage rules, bake extensions and halts as a live
rollout. What differs is only what touches the world:

- the deployer is a replay deployer that records and never deploys;
- remediation actions, incident sinks and notifications never run, and no
  ``guardrail_on_event`` observer hears of the replay;
- no gate, manual approval, change freeze or preflight is asked: a replay asks what the
  judgement would have been;
- an ``${env:NAME}`` the shell does not set is no reason to refuse a replay where only
  those parts read it (or a source the replay points at history instead);
- every stored event carries ``replay: true`` and the rollout's id starts with
  ``replay-``: a replay is never mistaken for a rollout;
- after a failure the rollback is recorded (which regions, when), but recovery is not
  verified: history kept the change, so it cannot show the recovery a rollback would
  have brought. The replay says so (``recovery``) rather than imagining it.

When the change reached each region, in history
------------------------------------------------
A replay needs to know when each region *really* ran the new version, because that is
what its readings show; guardrail's own schedule is what the replay decides. The two
meet in the replay deployer: when the engine deploys region ``r`` at its own time
``s`` (the plan's waves and bake times), the deploy completes at ``max(s, h[r])``,
``h[r]`` being the time history shows ``r`` on the new version (the virtual clock moves
on to it, as a slow deploy would). So guardrail never judges a region as deployed
before its readings are of the new version.

- ``deployed={"r3": T3, "r1": T1, ...}`` (``--deployed r3=TIME``, repeatable) gives
  ``h`` explicitly; the replay starts at the first wave's earliest time.
- ``deployed_at=T`` (``--deployed-at TIME``) alone says "as if guardrail had run the
  plan from T": history followed guardrail's own schedule, every region's ``h`` is
  the time the engine deploys it. With both, ``T`` is the start and the listed regions
  keep their explicit times.
- A region guardrail would deploy but history never did (not listed, and no
  ``deployed_at``) cannot be judged on the new version: the replay stops there with
  outcome ``incomplete`` (exit 3), having answered for every wave before it.
- A region history deployed *earlier* than guardrail would have is listed in
  ``caveats``: until guardrail deploys it, the replay treats it as still on the old
  version (a control region, a baseline), while its readings are already of the new
  one. The replay goes on (the decision may still be right) but says so.

Exposure: for each region, guardrail's deploy and rollback times in the replay, next
to history's deploy time; history kept the change, so its exposure runs at least to
the end of the replay.

Checks that answer only for now (a live ``tcp``/``http`` probe) are left out and
listed, as in the single-policy backtest (``guardrail.tools.backtest``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from guardrail.clock import VirtualClock
from guardrail.errors import ConfigError, UsageError
from guardrail.judging.decisions import Failure, Halt
from guardrail.language.loader import Plan, load_plan
from guardrail.plugin.interfaces import PluginContext
from guardrail.plugin.manager import GuardrailPluginManager, get_plugin_manager
from guardrail.rollout.engine import Engine
from guardrail.state.ids import new_rollout_id
from guardrail.state.locks import Lease
from guardrail.state.sqlite import SQLiteStore
from guardrail.text import iso
from guardrail.tools.backtest import check_inputs, unobserved, replayable
from guardrail.tools.replay_world import BoundedClock, ReplayDeployer, ReplayStore, WindowEnded

OUTCOMES = ("promoted", "rolled_back", "halted", "incomplete")


@dataclass
class Exposure:
    """One region: how long the new version ran there, with guardrail and in history."""

    region: str
    wave: str
    deployed_at: float | None
    """When guardrail's replayed rollout deployed it (None: it never would have)."""
    rolled_back_at: float | None
    """When guardrail's replayed rollout would have rolled it back (None: it would not)."""
    exposed_for: float
    """Seconds on the new version with guardrail: from its deploy to its rollback, or to the replay's end."""
    history_deployed_at: float | None
    """When history shows it on the new version (None: never, within what the replay was told)."""
    history_exposed_for: float
    """Seconds on the new version in history up to the replay's end (history kept the change): at least this."""


@dataclass
class ReplayResult:
    outcome: str
    """What guardrail would have reached: ``promoted``, ``rolled_back`` (a failure was
    decided and every deployed region rolled back; recovery not verified), ``halted``
    (no clean evidence: never promoted on missing evidence) or ``incomplete`` (history
    never deployed a region the next wave needs: the replay answers up to there)."""
    reason: str | None
    decided_at: float | None
    """When the decision was taken: the failing or halting tick, or the last bake's end."""
    decided_wave: str | None
    policy: str | None
    """The deciding policy, check and region (the first finding), on a failure."""
    check: str | None
    region: str | None
    findings: list[dict[str, Any]] = field(default_factory=list)
    """The engine's findings of the deciding tick: the evidence (query, value, threshold, baseline...)."""
    exposure: list[Exposure] = field(default_factory=list)
    """Every region of the plan, in wave order."""
    started_at: float = 0.0
    ended_at: float = 0.0
    """The replay's virtual clock at its start (the first wave's baselines) and its end."""
    deployed: dict[str, float] = field(default_factory=dict)
    """History's deploy time of each region the replay knew of (explicit or from ``deployed_at``)."""
    caveats: list[str] = field(default_factory=list)
    recovery: str | None = None
    """On a failure: why recovery was not verified."""
    skipped: list[dict[str, str]] = field(default_factory=list)
    """Checks left out: live probes that cannot answer for the past."""
    rollout_id: str = ""
    """The replay's id in its state file (``replay-...``)."""
    state_file: str | None = None
    """The state file kept, when one was given (``guardrail report``, ``status`` read it)."""
    plan: str = ""
    service: str = ""
    version: str = ""

    @property
    def exit_code(self) -> int:
        """As ``guardrail rollout``: 0 promoted, 1 rolled back, 3 halted (and incomplete)."""
        return {"promoted": 0, "rolled_back": 1}.get(self.outcome, 3)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["replay"] = True
        out["exit_code"] = self.exit_code
        for key in ("decided_at", "started_at", "ended_at"):
            out[key + "_iso"] = iso(out[key]) if out[key] is not None else None
        out["deployed_iso"] = {r: iso(t) for r, t in self.deployed.items()}
        return out


def replay_plan(plan_path: str | Path, *, deployed: Mapping[str, float] | None = None,
                deployed_at: float | None = None, sources: dict[str, dict[str, Any]] | None = None,
                variables: dict[str, Any] | None = None, pm: GuardrailPluginManager | None = None,
                state: str | Path | None = None, until: float | None = None,
                version: str | None = None) -> ReplayResult:
    """Replay the rollout plan at ``plan_path`` over history; see the module's docstring.

    :param deployed: region -> epoch seconds when history shows it on the new version.
    :param deployed_at: epoch seconds: "as if guardrail had run the plan from then".
    :param sources: source settings by name, overriding the plan's and its regions'
        (``{"prometheus": {"plugin": "prometheus", "url": ...}}``): point the plan at history.
    :param variables: template variables added to every region's.
    :param state: keep the replayed rollout in this SQLite file (default: a throw-away one).
    :param until: stop the replay at this time at the latest (a bake still running is
        then ``halted``, with the evidence so far).
    :param version: the version history ran, in place of the plan's ``change.version``
        (policies' ``{{version}}`` and the record read it); a sweep replays each one found.
    """
    pm = pm or get_plugin_manager()
    plan, skipped = _replay_plan(_load(plan_path, pm.registry, set(sources or {})), sources or {}, variables or {},
                                 version)
    history = {r: float(t) for r, t in (deployed or {}).items()}
    start, last = _schedule(plan, history, deployed_at)
    if until is not None and until <= start:
        raise UsageError(f"--until must be after the replay's start ({iso(start)})")
    check_inputs(plan, pm.registry)
    with tempfile.TemporaryDirectory(prefix="guardrail-replay-") as scratch:
        path = Path(state) if state is not None else Path(scratch) / "replay.db"
        store = ReplayStore(path)
        try:
            result = _run(plan, store, pm, start=start, history=history, follow=deployed_at is not None,
                          last=last, until=until, state_dir=path.parent)
        finally:
            store.close()
    result.skipped = skipped
    result.state_file = str(state) if state is not None else None
    return result


UNUSED = "http://unused-by-a-replay.invalid/"
"""The value of an environment variable the replay does not need and the shell does not set."""


def _load(plan_path: str | Path, registry: Any, overridden: set[str]) -> Plan:
    """The plan, loaded as a rollout would load it; but a ``${env:NAME}`` that is not set
    where the replay never reads it (the deployer, actions, incident sinks, notifications,
    gates, and the sources the replay points elsewhere) is no reason to refuse a replay:
    those variables are given a placeholder. Any other problem is reported as usual."""
    import os
    import re

    try:
        return load_plan(plan_path, registry)
    except ConfigError as exc:
        names = set()
        for problem in exc.problems:
            unset = re.fullmatch(r"environment variable (\w+) is not set", problem.message)
            if unset and _unused(problem.path, overridden):
                names.add(unset.group(1))
        if not names:
            raise
    return load_plan(plan_path, registry, environ={**os.environ, **dict.fromkeys(names, UNUSED)})


def _unused(path: str, overridden: set[str]) -> bool:
    import re

    if re.match(r"^(deploy|on_failure\.(actions|incident)|on_recovery|notify)\b|^waves\[\d+\]\.gate\b", path):
        return True
    return any(re.match(rf"^(regions\.[^.]+\.)?sources\.{re.escape(name)}\b", path) for name in overridden)


def _replay_plan(plan: Plan, sources: dict[str, dict[str, Any]], variables: dict[str, Any],
                 version: str | None = None) -> tuple[Plan, list]:
    """The plan as a replay runs it: sources pointed at history, the replay deployer in
    the deployer's place, nothing that acts on the world or asks a person (actions,
    incident sinks, notifications, gates, approvals, change freezes, preflight), and
    without the checks that cannot answer for the past."""
    from guardrail.language.rollout import OnRecovery, PluginRef, Windows

    rollout = plan.rollout
    regions = {name: region.model_copy(update={"sources": {k: v for k, v in region.sources.items() if k not in sources}})
               for name, region in rollout.regions.items()}
    replayed = rollout.model_copy(update={
        "change": rollout.change.model_copy(update={"version": version}) if version else rollout.change,
        "deploy": PluginRef(plugin="noop"),
        "sources": {**rollout.sources, **{k: dict(v) for k, v in sources.items()}},
        "regions": regions,
        "vars": {**rollout.vars, **variables},
        "on_failure": rollout.on_failure.model_copy(update={"actions": [], "incident": []}),
        "on_recovery": OnRecovery(),
        "notify": [],
        "preflight": False,
        "windows": Windows(),
        "clock": "virtual",
        "waves": [w.model_copy(update={"approval": "auto", "gate": None}) for w in rollout.waves],
    })
    policies, skipped = [], []
    for loaded in plan.policies:
        kept, left_out = replayable(loaded)
        skipped += left_out
        if kept.policy.checks:
            policies.append(kept)
    if not policies:
        raise UsageError(f"{plan.path}: no check of its policies can be replayed: every one is a live probe")
    return Plan(plan.path, replayed, policies, plan.text, plan.secrets), skipped


def _schedule(plan: Plan, history: dict[str, float], deployed_at: float | None) -> tuple[float, str | None]:
    """The replay's start, and the last wave it can answer for (None: every wave)."""
    rollout = plan.rollout
    unknown = sorted(set(history) - set(rollout.regions))
    if unknown:
        raise UsageError(f"--deployed names {', '.join(unknown)}, not a region of {plan.path.name} "
                         f"(regions: {', '.join(rollout.regions)})")
    if deployed_at is None and not history:
        raise UsageError("say when the change reached the regions in history: --deployed REGION=TIME "
                         "(repeatable) or --deployed-at TIME")
    first = rollout.waves[0]
    if deployed_at is not None:
        start = deployed_at
        if history and min(history.values()) < start:
            region = min(history, key=history.get)
            raise UsageError(f"--deployed {region}={iso(history[region])} is before --deployed-at {iso(start)}")
        return start, None
    missing = [r for r in first.regions if r not in history]
    if missing:
        raise UsageError(f"history's deploy time of {', '.join(missing)} (wave {first.name}, the first) is not known:"
                         f" give --deployed {missing[0]}=TIME, or --deployed-at TIME")
    last = None
    for previous, wave in zip(rollout.waves, rollout.waves[1:]):
        if any(r not in history for r in wave.regions):
            last = previous.name
            break
    return min(history[r] for r in first.regions), last


def _run(plan: Plan, store: SQLiteStore, pm: GuardrailPluginManager, *, start: float, history: dict[str, float],
         follow: bool, last: str | None, until: float | None, state_dir: Path) -> ReplayResult:
    rollout = plan.rollout
    clock = VirtualClock(start)
    rollout_id = "replay-" + new_rollout_id(start)
    store.create_rollout({"id": rollout_id, "service": rollout.service, "version": rollout.change.version,
                          "previous": rollout.change.previous, "plan_path": str(plan.path), "plan_digest": "-",
                          "clock": "virtual", "clock_start": start})
    lease = Lease(store, f"replay:{rollout_id}", rollout_id)  # never the service's own lock
    lease.acquire()
    deployer = ReplayDeployer(clock, history)
    context = PluginContext(clock=clock, state_dir=state_dir, base_dir=plan.path.parent, service=rollout.service,
                            rollout_id=rollout_id)
    engine = Engine(plan=plan, store=store, registry=pm.registry, hook=unobserved(), clock=BoundedClock(clock, until),
                    rollout_id=rollout_id, context=context, lease=lease, realtime=False)
    engine.deployer = deployer
    engine.journal.emit("rollout.started", service=rollout.service, change=rollout.change.model_dump(),
                        waves=[{"name": w.name, "regions": w.regions, "bake": w.bake, "min_coverage": w.min_coverage}
                               for w in rollout.waves],
                        plan=str(plan.path), policies=[str(p.path) for p in plan.policies], clock="virtual",
                        history={r: iso(t) for r, t in history.items()},
                        schedule="guardrail's own" if follow else "history's deploy times")
    recovery = None
    try:
        try:
            wave, decision = engine.decide_plan(last=last)
        except WindowEnded:
            wave, decision = None, Halt(f"the replay stopped at {iso(until)} (--until) before a decision")
        decided_at = clock.now()
        if isinstance(decision, Failure):
            recovery = ("not verified: history kept the change, so it cannot show the recovery a rollback would "
                        "have brought")
            engine.record_rollback(decision)
            engine.transition("done", outcome="rolled_back", reason=f"{decision.reason}; recovery {recovery}",
                              finished=True)
            outcome = "rolled_back"
        elif isinstance(decision, Halt):
            engine.transition("halted", outcome="halted", reason=decision.reason, finished=True)
            outcome = "halted"
        elif last is not None:
            waiting = next(w for w in rollout.waves[[w.name for w in rollout.waves].index(last) + 1:])
            never = [r for r in waiting.regions if r not in history]
            decision = Halt(f"history never ran {rollout.change.version} in {', '.join(never)} (wave "
                            f"{waiting.name}): the replay answers up to wave {last}, which passed")
            engine.transition("halted", outcome="halted", reason=decision.reason, finished=True)
            outcome = "incomplete"
        else:
            engine.transition("promoted", outcome="promoted", finished=True)
            outcome = "promoted"
    finally:
        lease.release()
    findings = decision.findings if isinstance(decision, Failure) else []
    first = findings[0] if findings else {}
    ended = clock.now()
    exposure = []
    for w in rollout.waves:
        for region in w.regions:
            at, back, seen = deployer.deployed.get(region), deployer.rolled_back.get(region), history.get(region)
            exposed = 0.0 if at is None else (ended if back is None else back) - at
            exposure.append(Exposure(region, w.name, at, back, exposed, seen,
                                     0.0 if seen is None else max(0.0, ended - seen)))
    if wave is None and outcome in ("promoted", "incomplete"):
        wave = rollout.waves[-1] if last is None else next(w for w in rollout.waves if w.name == last)
    return ReplayResult(outcome, decision.reason if decision is not None else None, decided_at,
                        wave.name if wave is not None else None,
                        first.get("policy"), first.get("check"), first.get("region"), findings, exposure,
                        start, ended, dict(history), deployer.caveats, recovery, rollout_id=rollout_id,
                        plan=str(plan.path), service=rollout.service, version=rollout.change.version)


__all__ = ["Exposure", "OUTCOMES", "ReplayResult", "replay_plan"]
