"""What a bake's ticks tell: the evidence of a failing check, the reason of a decision,
how long an unclean check may still take to settle, and the progress of a tick for
whoever watches. Functions over a phase's states, for the engine."""

from __future__ import annotations

from typing import Any

from guardrail.judging.decisions import Failure
from guardrail.language.model import Rollout
from guardrail.rollout.evaluation import Evaluator, Item
from guardrail.rollout.ticks import Phase
from guardrail.text import format_duration


def finding(evaluator: Evaluator, rollout: Rollout, phase: Phase, item: Item) -> dict[str, Any]:
    """The evidence of one check in one region, as a failure and its incident carry it."""
    state = phase.states[item]
    check = evaluator.checks[(item.policy, item.check)]
    verdict = state.last
    return {"region": item.region, "policy": item.policy, "check": item.check, "status": verdict.status,
            "value": verdict.value, "threshold": verdict.threshold, "reference": verdict.reference,
            "comparison": check.fail_if.text if check.fail_if else None, "for": format_duration(check.for_),
            "query": evaluator.query_text(item), "reason": verdict.reason,
            "first_breach_at": state.first_breach_at, "phase": phase.name,
            "wave": rollout.wave_of(item.region).name}


def warning(wave: str, phase: Phase, item: Item) -> dict[str, Any]:
    """The fields of a ``check.warned`` event: a check that started to warn in the bake of
    ``wave`` (a region of an earlier wave bakes again with each later one)."""
    verdict = phase.states[item].last
    return {"wave": wave, "region": item.region, "policy": item.policy,
            "check": item.check, "value": verdict.value, "threshold": verdict.threshold, "reason": verdict.reason}


def failure_reason(phase: Phase, failing: list[Item]) -> str:
    return "; ".join(f"{i}: {phase.states[i].last.reason}" for i in failing[:5])


def settle_by(evaluator: Evaluator, phase: Phase, item: Item, extend_from: float) -> float:
    """When an unclean item must have settled (passed or failed) after the bake's end."""
    policy = evaluator.policies[item.policy]
    since = phase.states[item].breach_since
    start = max(extend_from, since) if since is not None else extend_from
    return start + evaluator.checks[(item.policy, item.check)].for_ + policy.inconclusive_limit * policy.interval


def tick_event(wave: str, phase: Phase, at: float, end: float) -> dict[str, Any]:
    """The fields of a ``bake.tick`` event: each check's latest verdict and the time left."""
    latest = [{"item": str(i), "region": i.region, "check": i.check, "status": s.last.status, "value": s.last.value,
               "threshold": s.last.threshold, "pending": s.last.pending}
              for i, s in phase.states.items() if s.last is not None]
    return {"wave": wave, "remaining": max(0.0, end - at), "checks": latest}


def rollback_targets(rollout: Rollout, deployed: list[str], failure: Failure) -> list[str]:
    """The regions a failure rolls back, in reverse wave order: every deployed region, or
    only the failing waves' with ``rollback: failing-wave``."""
    if rollout.on_failure.rollback == "failing-wave" and failure.waves:
        deployed = [r for r in deployed if rollout.wave_of(r).name in failure.waves]
    by_wave = [[r for r in w.regions if r in deployed] for w in rollout.waves]
    return [r for regions in reversed(by_wave) for r in reversed(regions)]
