"""``guardrail check``: evaluate a policy's checks once, in one region, now (or at a
given time), as a policy author does to try a policy against production.

Source settings come from a plan (its ``sources``, the region's overrides and
variables) or, for a bare policy, from a Prometheus URL. The verdicts are a bake's,
evaluated once:

- ``for:`` does not apply (as in preflight): the question is whether the condition
  holds right now; the reason says how long a bake would wait before failing;
- ``compare: baseline`` takes its reference from the window that ends at the
  evaluation time (``baseline.window``, else the region's bake with a plan, else 30m);
- ``compare: control`` compares with the plan's other regions over
  ``interval * min_samples``; without a plan there is no control and the check is
  skipped, as in a rollout's last wave.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from guardrail.secrets import Redactor
from guardrail.language import documents
from guardrail.clock import SystemClock
from guardrail.errors import ConfigError, UsageError
from guardrail.rollout.evaluation import Evaluator, Item
from guardrail.plugin.interfaces import PluginContext
from guardrail.judging.evaluate import (ControlEvidence, baseline_reference, baseline_window, comparison_text,
                                        control_window, judge_once)
from guardrail.judging.judge import Verdict, explain
from guardrail.language.loader import LoadedPolicy, Plan, check_policy, load_plan
from guardrail.language.model import Rollout
from guardrail.plugin.manager import Registry

NO_PLAN = "no control region: pass --plan, whose other regions are the control"


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict in one region, with what it was judged on."""

    policy: str
    check: str
    region: str
    source: str
    query: str
    status: str
    value: float | None
    threshold: float | None
    reference: float | None
    comparison: str | None
    reason: str
    pending: bool = False
    skipped: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    advisory: bool = False
    """The check only warns (``mode: warn``): its verdicts never decide, as in a bake."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def exit_code(results: list[CheckResult]) -> int:
    """1 when any check fails, else 3 when any is inconclusive, else 0 (a warning, or a
    warn-only check without evidence, decides nothing: a bake would not stop for it)."""
    statuses = {r.status for r in results if not r.advisory}
    return 1 if "fail" in statuses else 3 if "inconclusive" in statuses else 0


def check_now(policy_path: str | Path, region: str, registry: Registry, *, variables: dict[str, Any] | None = None,
              prometheus_url: str | None = None, plan_path: str | Path | None = None, at: float | None = None,
              environ: dict[str, str] | None = None, state_dir: Path | None = None,
              concurrency: int = 16, deployed_at: float | None = None) -> list[CheckResult]:
    """Evaluate every check of the policy once at ``at`` (default: now) in ``region``.

    ``deployed_at``: judge as a bake of a change deployed then would at ``at``: the
    baseline window ends at ``deployed_at`` and control windows start there (without
    it, the baseline is the window ending at ``at`` and a control window is the last
    ``min_samples`` steps).

    Raises ``ConfigError`` for an invalid policy or plan and ``UsageError`` for a
    region the plan lacks or a Prometheus check with nowhere to ask."""
    plan, controls = _plan(Path(policy_path), region, registry, variables or {}, prometheus_url,
                           Path(plan_path) if plan_path else None, environ)
    at = time.time() if at is None else float(at)
    context = PluginContext(clock=SystemClock(), state_dir=state_dir or Path.cwd(), base_dir=plan.path.parent,
                            service=plan.rollout.service, redact=Redactor(plan.secrets).redact)
    evaluator = Evaluator(plan, registry, context, concurrency=concurrency)
    try:
        return _evaluate(evaluator, plan, region, controls, at, deployed_at)
    finally:
        evaluator.close()


def _evaluate(evaluator: Evaluator, plan: Plan, region: str, controls: list[str], at: float,
              deployed_at: float | None) -> list[CheckResult]:
    items = evaluator.items([region])
    checks = {i: evaluator.checks[(i.policy, i.check)] for i in items}
    interval = {i: evaluator.policies[i.policy].interval for i in items}
    ranges, control_ranges, windows = {}, {}, {}
    for item, check in checks.items():  # windows first: they are in flight while the instants are measured
        if check.compare == "baseline":
            width = baseline_window(check, plan.rollout.wave_of(region).bake)
            end = at if deployed_at is None else deployed_at
            ranges[item] = evaluator.submit_range(item, end - width, end, interval[item])
        elif check.compare == "control" and controls:
            start = float("-inf") if deployed_at is None else deployed_at
            windows[item] = begin, samples = control_window(check, interval[item], start, at)
            if samples < check.min_samples:
                continue  # the window still fills: a pending pass, as in a bake
            ranges[item] = evaluator.submit_range(item, begin, at, interval[item])
            control_ranges[item] = [(r, evaluator.submit_range(Item(item.policy, item.check, r), begin, at,
                                                               interval[item])) for r in controls]
    readings = evaluator.measure([i for i, c in checks.items() if c.compare != "control"], at)
    results = []
    for item, check in checks.items():
        on_no_data = evaluator.policies[item.policy].on_no_data
        detail: dict[str, Any] = {}
        if check.compare == "control":
            if not controls:
                evidence = ControlEvidence((at, 0), skipped=NO_PLAN)
            elif item not in ranges:
                evidence = ControlEvidence(windows[item])
            else:
                evidence = ControlEvidence(windows[item], ranges[item].result(),
                                           [(r, f.result()) for r, f in control_ranges[item]])
            # Without a plan there is no change either: nothing to compare with, before or after.
            judged = check if controls else check.model_copy(update={"on_no_control": "skip"})
            verdict, detail = judge_once(judged, at=at, on_no_data=on_no_data, control=evidence)
            detail.pop("window", None)
            detail.pop("control_samples_by_region", None)
        elif check.compare == "baseline":
            window = ranges[item].result()
            reference, base = baseline_reference(check, window)
            if window.error:
                verdict = Verdict("inconclusive", None, None, None, f"baseline window: {window.error}")
            else:
                verdict, _ = judge_once(check, at=at, on_no_data=on_no_data, reading=readings[item],
                                        reference=reference)
                detail = {"baseline_samples": base["samples"], "baseline_stat": base["stat"],
                          "baseline_window": base["window"]}
        else:
            verdict, _ = judge_once(check, at=at, on_no_data=on_no_data, reading=readings[item])
        if check.compare != "control":
            detail.update(readings[item].detail)
        detail.pop("query", None)
        results.append(CheckResult(
            policy=item.policy, check=item.check, region=region, source=check.source,
            query=evaluator.query_text(item), status=verdict.status, value=verdict.value,
            threshold=verdict.threshold, reference=verdict.reference, comparison=comparison_text(check),
            reason=explain(check, verdict), pending=verdict.pending, skipped=verdict.skipped, detail=detail,
            advisory=check.advisory))
    return results


# -- the plan around one policy ----------------------------------------------------------


def _plan(policy_path: Path, region: str, registry: Registry, variables: dict[str, Any], prometheus_url: str | None,
          plan_path: Path | None, environ: dict[str, str] | None) -> tuple[Plan, list[str]]:
    """(a plan holding only this policy, the control regions). With ``plan_path`` the
    plan's sources, regions and variables; otherwise one region and ``prometheus_url``."""
    if plan_path is not None:
        full = load_plan(plan_path, registry, environ=environ)
        if region not in full.rollout.regions:
            raise UsageError(f"region {region!r} is not in {plan_path} (regions: {', '.join(full.rollout.regions)})")
        data = full.rollout.model_dump(by_alias=True, mode="json")
        secrets, base = set(full.secrets), full.path
    else:
        data = {"apiVersion": "guardrail/v1", "kind": "Rollout", "service": "check",
                "change": {"version": "-", "previous": "-"}, "deploy": {"plugin": "noop"},
                "regions": {region: {}}, "waves": [{"name": "check", "regions": [region], "bake": "0s"}],
                "policies": [str(policy_path)]}
        secrets, base = set(), policy_path.resolve()
    if prometheus_url:
        _override_prometheus(data, prometheus_url)
    for spec in data["regions"].values():  # --var wins over the plan's variables, in every region
        spec["vars"] = {**spec.get("vars", {}), **variables}
    rollout = Rollout.model_validate(data)
    policy = _load_policy(policy_path, registry, rollout, secrets, environ)
    plan = Plan(path=base, rollout=rollout, policies=[policy], text="", secrets=secrets)
    for check in policy.policy.checks:
        plugin, settings = plan.source_config(check.source, region)
        if plugin == "prometheus" and "url" not in settings:
            raise UsageError(f"check {check.name!r} asks Prometheus: pass --prometheus URL, "
                             f"or --plan PLAN whose sources say where it is")
    controls = [r for w in rollout.waves for r in w.regions if r != region] if plan_path is not None else []
    return plan, controls


def _override_prometheus(data: dict[str, Any], url: str) -> None:
    """``--prometheus URL`` replaces the URL of every source that uses the prometheus plugin."""
    sources = data.setdefault("sources", {})
    sources.setdefault("prometheus", {})
    for name, settings in sources.items():
        if settings.get("plugin", name) == "prometheus":
            settings["url"] = url
    for spec in data["regions"].values():
        for name, settings in spec.get("sources", {}).items():
            if sources.get(name, {}).get("plugin", name) == "prometheus" and "url" in settings:
                settings["url"] = url


def _load_policy(path: Path, registry: Registry, rollout: Rollout, secrets: set[str],
                 environ: dict[str, str] | None) -> LoadedPolicy:
    doc = documents.read(path)
    if doc.data is not None:
        documents.interpolate_env(doc, secrets, environ)
    if not isinstance(doc.data, dict) or doc.data.get("kind") != "Policy":
        raise ConfigError(doc.problems or [doc.problem((), "expected a policy (kind: Policy)")])
    sources = {name: s.get("plugin", name) for name, s in rollout.sources.items()}
    policy, problems = check_policy(doc, registry, sources=sources, rollout=rollout)
    problems = documents.redact(documents.tidy(doc.problems + problems), doc.secrets)
    if problems or policy is None:
        raise ConfigError(problems)
    return LoadedPolicy(path.resolve(), policy, "")
