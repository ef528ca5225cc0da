"""Before the first deploy: can the plan's deployer and actions act at all?

A deploy program that does not exist used to be a failed deploy, then a failed
rollback of a region where nothing ran: a person paged for nothing. Each deployer and
action may say, from its settings and every region's variables, what keeps it from
acting (``validate_ready`` on the plugin base classes); any problem refuses the rollout
as a usage error at the key of the plan that causes it, before anything is deployed.
"""

from __future__ import annotations

from typing import Any

from guardrail.errors import ConfigError, Problem
from guardrail.language.documents import display_name
from guardrail.language.loader import Plan
from guardrail.language.yamldoc import parse
from guardrail.plugin.interfaces import PluginContext
from guardrail.plugin.manager import Registry


def readiness_problems(plan: Plan, registry: Registry, context: PluginContext) -> list[Problem]:
    rollout = plan.rollout
    regions = [rollout.region_vars(r) for w in rollout.waves for r in w.regions]
    refs: list[tuple[str, Any, tuple]] = [("deployers", rollout.deploy, ("deploy", "with"))]
    refs += [("actions", ref, ("on_failure", "actions", i, "with")) for i, ref in enumerate(rollout.on_failure.actions)]
    refs += [("actions", ref, ("on_recovery", "actions", i, "with"))
             for i, ref in enumerate(rollout.on_recovery.actions)]
    doc = parse(plan.text, display_name(plan.path))
    problems = []
    for kind, ref, at in refs:
        factory = registry.get(kind, ref.plugin)
        model = getattr(factory, "Settings", None)
        settings = model.model_validate(ref.with_) if model is not None else ref.with_
        check = getattr(factory(settings, context), "validate_ready", None)
        for path, message in (check(regions) if check is not None else []):
            problems.append(doc.problem(at + tuple(path), message))
    return problems


def check_ready(plan: Plan, registry: Registry, context: PluginContext) -> None:
    """Raise ``ConfigError`` (exit 2) when the deployer or an action cannot act."""
    problems = readiness_problems(plan, registry, context)
    if problems:
        raise ConfigError(problems)
