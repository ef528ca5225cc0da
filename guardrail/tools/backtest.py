"""``guardrail backtest``: what a policy would have decided, had a change been deployed
at a past time T.

Why: "would this policy have caught last month's incident, and would it have cried
wolf last week?" is the question a policy author has before a policy guards anything,
and history already holds the answer. A backtest replays the policy over that history
with the engine's own code on a virtual clock starting at T: ``Engine.decide_wave``
captures the baselines (range queries over the window before T), then bakes (instant
queries every ``interval`` from T, the judge's ``for:`` holds, inconclusive limits, the
bake's end and its grace), through the same source plugins a rollout uses. Nothing is
deployed (the ``noop`` deployer stands in) and nothing is notified: the bake's decision
is the answer, with the engine's evidence.

Checks that can only answer for *now* (a live ``tcp`` or ``http`` probe: anything
without a ``query``) cannot be replayed; they are left out and listed, rather than
made to halt every backtest as inconclusive.

The virtual rollout lives in a throw-away state file unless ``state`` is given (keep
it to inspect every measurement with ``guardrail status``).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from guardrail.clock import VirtualClock
from guardrail.text import hold_text, iso
from guardrail.judging.decisions import Failure, Halt
from guardrail.rollout.engine import Engine
from guardrail.errors import UsageError
from guardrail.plugin.interfaces import PluginContext
from guardrail.language.loader import LoadedPolicy, Plan, load_policy
from guardrail.state.locks import Lease
from guardrail.language.model import Rollout
from guardrail.language.types import format_duration, render_value
from guardrail.plugin.manager import GuardrailPluginManager, get_plugin_manager
from guardrail.state.sqlite import SQLiteStore

SERVICE = "backtest"
WAVE = "backtest"


@dataclass
class CheckSummary:
    policy: str
    check: str
    evaluations: int
    status: str
    """The last verdict: pass, fail, inconclusive or warn (pending passes say so in ``reason``)."""
    value: float | None
    threshold: float | None
    reference: float | None
    first_breach_at: float | None
    failed_at: float | None
    reason: str
    hold: str | None = None
    """How far a breach got into the check's ``for:`` without failing, in words
    (``text.hold_text``): still breaching at the end, or breached and recovered."""
    warned_at: float | None = None
    """The first evaluation that warned (``warn_if``, ``mode: warn``)."""
    warnings: int = 0
    """Evaluations that warned."""


@dataclass
class BacktestResult:
    outcome: str
    """``fail`` (would have rolled back), ``pass`` (would have promoted) or ``halt``."""
    region: str
    controls: list[str]
    deployed_at: float
    until: float
    decided_at: float | None
    """When the bake stopped: the failing or halting tick, or its end."""
    reason: str | None
    findings: list[dict[str, Any]] = field(default_factory=list)
    checks: list[CheckSummary] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    rollout_id: str = ""

    @property
    def warnings(self) -> list[CheckSummary]:
        """The checks that warned: reported apart, since a warning never decides."""
        return [c for c in self.checks if c.warned_at is not None]

    @property
    def exit_code(self) -> int:
        """0 would pass, 1 would fail (and roll back), 3 would halt: as ``guardrail rollout``."""
        return {"pass": 0, "fail": 1}.get(self.outcome, 3)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["exit_code"] = self.exit_code
        out["warnings"] = [{"policy": c.policy, "check": c.check, "warned_at": c.warned_at,
                            "warned_at_iso": iso(c.warned_at), "evaluations": c.warnings} for c in self.warnings]
        for key in ("deployed_at", "until", "decided_at"):
            out[key + "_iso"] = iso(out[key]) if out[key] is not None else None
        return out


def replayable(policy: LoadedPolicy) -> tuple[LoadedPolicy, list[dict[str, str]]]:
    """The policy without the checks that cannot be asked about the past, and those checks."""
    kept = [c for c in policy.policy.checks if "query" in c.params]
    skipped = [{"policy": policy.policy.name, "check": c.name,
                "why": f"a live probe (source {c.source}): it answers for now only, so history cannot replay it"}
               for c in policy.policy.checks if "query" not in c.params]
    trimmed = policy.policy.model_copy(update={"checks": kept})
    return LoadedPolicy(policy.path, trimmed, policy.text), skipped


def build_plan(policies: list[LoadedPolicy], *, sources: dict[str, dict[str, Any]], region: str, controls: list[str],
               bake: float, variables: dict[str, Any], base: Path) -> Plan:
    """A one-wave virtual rollout to ``region``; control regions wait in a later wave
    that never starts, which is what makes them the control (``guardrail.rollout.control``)."""
    waves = [{"name": WAVE, "regions": [region], "bake": format_duration(bake)}]
    if controls:
        waves.append({"name": "control", "regions": list(controls), "bake": "0s"})
    rollout = Rollout.model_validate({
        "apiVersion": "guardrail/v1", "kind": "Rollout", "service": SERVICE,
        "change": {"version": "backtested-change", "previous": "history"},
        "deploy": {"plugin": "noop"}, "sources": sources, "clock": "virtual",
        "regions": {r: {"vars": dict(variables)} for r in [region, *controls]},
        "waves": waves, "policies": [str(p.path) for p in policies],
    })
    return Plan(base / "backtest.yaml", rollout, policies, text="")


def check_inputs(plan: Plan, registry: Any) -> None:
    """Source settings and template variables, refused before the first query rather
    than turned into a bake of inconclusive readings."""
    used = {c.source for p in plan.policies for c in p.policy.checks} | set(plan.rollout.sources)
    for name in sorted(used):
        plugin, settings = plan.source_config(name)
        if plugin not in registry.sources:
            raise UsageError(f"checks read source {name!r}, which is neither configured nor a source plugin")
        model = getattr(registry.get("sources", plugin), "Settings", None)
        if model is None:
            continue
        try:
            model.model_validate(settings)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            hint = " (give it with --prometheus URL)" if plugin == "prometheus" else ""
            raise UsageError(f"source {name!r}: {where}: {first['msg']}{hint}") from None
    for loaded in plan.policies:
        for check in loaded.policy.checks:
            for region in plan.rollout.regions:
                try:
                    render_value(check.params, plan.rollout.region_vars(region))
                except KeyError as exc:
                    raise UsageError(f"{loaded.policy.name}/{check.name} needs the template variable "
                                     f"{{{{{exc.args[0]}}}}}: pass --var {exc.args[0]}=...") from None


def backtest(policy_paths: list[str | Path], *, region: str, deployed_at: float, until: float | None = None,
             controls: list[str] | None = None, sources: dict[str, dict[str, Any]] | None = None,
             variables: dict[str, Any] | None = None, pm: GuardrailPluginManager | None = None,
             state: str | Path | None = None) -> BacktestResult:
    """Replay ``policy_paths`` in ``region`` as if deployed at ``deployed_at`` (epoch
    seconds), evaluating until ``until`` (default: one hour later).

    :param sources: source settings by the name checks use, as in a plan's ``sources:``
        (``{"prometheus": {"url": "http://..."}}``); any source plugin that answers for
        past times works, the ``sim`` included.
    """
    controls = list(controls or [])
    until = deployed_at + 3600.0 if until is None else until
    if until <= deployed_at:
        raise UsageError("--until must be after --deployed-at")
    if region in controls:
        raise UsageError(f"region {region!r} cannot be its own control")
    pm = pm or get_plugin_manager()
    loaded, skipped = [], []
    for path in policy_paths:
        policy, left_out = replayable(load_policy(path, pm.registry))
        skipped += left_out
        if policy.policy.checks:
            loaded.append(policy)
    if not loaded:
        raise UsageError("no check of these policies can be replayed: every one is a live probe")
    base = Path(policy_paths[0]).resolve().parent
    plan = build_plan(loaded, sources=sources or {}, region=region, controls=controls, bake=until - deployed_at,
                      variables=variables or {}, base=base)
    check_inputs(plan, pm.registry)
    with tempfile.TemporaryDirectory(prefix="guardrail-backtest-") as scratch:
        path = Path(state) if state is not None else Path(scratch) / "backtest.db"
        store = SQLiteStore(path)
        try:
            result = _run(plan, store, pm, deployed_at, path.parent)
        finally:
            store.close()
    result.skipped = skipped
    return result


def _run(plan: Plan, store: SQLiteStore, pm: GuardrailPluginManager, deployed_at: float, state_dir: Path) -> BacktestResult:
    from guardrail.state.ids import new_rollout_id

    clock = VirtualClock(deployed_at)
    rollout_id = "backtest-" + new_rollout_id(deployed_at)
    store.create_rollout({"id": rollout_id, "service": SERVICE, "version": plan.rollout.change.version,
                          "previous": plan.rollout.change.previous, "plan_path": str(plan.path), "plan_digest": "-",
                          "clock": "virtual", "clock_start": deployed_at})
    lease = Lease(store, SERVICE, rollout_id)
    lease.acquire()
    context = PluginContext(clock=clock, state_dir=state_dir, base_dir=plan.path.parent, service=SERVICE)
    engine = Engine(plan=plan, store=store, registry=pm.registry, hook=unobserved(), clock=clock,
                    rollout_id=rollout_id, context=context, lease=lease, realtime=False)
    wave = plan.rollout.waves[0]
    try:
        decision = engine.decide_wave(wave)
    finally:
        lease.release()
    region, controls = wave.regions[0], [r for w in plan.rollout.waves[1:] for r in w.regions]
    rows = store.measurements(rollout_id, f"bake:{WAVE}")
    decided = rows[-1]["at"] if rows else None
    outcome = "fail" if isinstance(decision, Failure) else "halt" if isinstance(decision, Halt) else "pass"
    until = deployed_at + wave.bake
    return BacktestResult(outcome, region, controls, deployed_at, until, decided,
                          decision.reason if decision is not None else None,
                          decision.findings if isinstance(decision, Failure) else [],
                          _summaries(rows, {(p.policy.name, c.name): c.for_ for p in plan.policies
                                            for c in p.policy.checks}), rollout_id=rollout_id)


def unobserved() -> Any:
    """The hooks with no ``guardrail_on_event`` observer: a notifier plugin must not
    announce an imagined rollout as a real one."""
    import pluggy

    from guardrail.plugin import hookspecs

    quiet = pluggy.PluginManager("guardrail")
    quiet.add_hookspecs(hookspecs)
    return quiet.hook


def _summaries(rows: list[dict[str, Any]], holds: dict[tuple[str, str], float] | None = None) -> list[CheckSummary]:
    """One summary per check; ``holds``: each check's ``for:``, to say how far a breach got."""
    holds = holds or {}
    last: dict[tuple[str, str], dict[str, Any]] = {}
    failed: dict[tuple[str, str], float] = {}
    warned: dict[tuple[str, str], list[float]] = {}
    held: dict[tuple[str, str], float] = {}  # the longest breach that did not fail
    for row in rows:
        key = (row["policy"], row["check"])
        last[key] = row
        if row["status"] == "fail":
            failed.setdefault(key, row["at"])
        elif row["breach_since"] is not None:
            held[key] = max(held.get(key, 0.0), row["at"] - row["breach_since"])
        if row["status"] == "warn":
            warned.setdefault(key, []).append(row["at"])
    out = []
    for (p, c), r in last.items():
        key, hold = (p, c), None
        if key not in failed and holds.get(key) and key in held:
            breaching = r["breach_since"] is not None
            hold = hold_text(r["at"] - r["breach_since"] if breaching else held[key], holds[key],
                             recovered=not breaching)
        times = warned.get(key, [])
        out.append(CheckSummary(p, c, r["evaluations"], r["status"], r["value"], r["threshold"], r["reference"],
                                r["first_breach_at"], failed.get(key), r["reason"] or "", hold,
                                times[0] if times else None, len(times)))
    return out


__all__ = ["BacktestResult", "CheckSummary", "backtest", "build_plan", "check_inputs", "iso", "replayable", "unobserved"]
