"""Preflight: refuse to start a rollout while its policies already fail.

A change should not be blamed for a failure that was there before it, and a rollout
started into one would roll back a healthy change. Every absolute check is judged once
in every region of the plan, now (``judge_once``: ``for:`` does not apply); relative
and control checks are left out, since before a change there is nothing to compare.
"""

from __future__ import annotations

from guardrail.judging.evaluate import judge_once
from guardrail.language.loader import Plan
from guardrail.rollout.evaluation import Evaluator


def failing_now(plan: Plan, evaluator: Evaluator, at: float) -> list[str]:
    """``region/policy/check: reason`` of each check that fails at ``at``."""
    items = [i for i in evaluator.items(plan.rollout.regions)
             if evaluator.checks[(i.policy, i.check)].compare is None]
    readings = evaluator.measure(items, at)
    failing = []
    for item in items:
        check = evaluator.checks[(item.policy, item.check)]
        verdict, _ = judge_once(check, at=at, on_no_data=evaluator.policies[item.policy].on_no_data,
                                reading=readings[item])
        if verdict.status == "fail":
            failing.append(f"{item}: {verdict.reason}")
    return failing
