"""Preflight: refuse to start a rollout while its policies already fail, or cannot be
judged.

A change should not be blamed for a failure that was there before it, and a rollout
started into one would roll back a healthy change. Every absolute check is judged once
in every region of the plan, now (``judge_once``: ``for:`` does not apply); relative
and control checks are left out, since before a change there is nothing to compare.
A warning never blocks. A check that is inconclusive (no data, stale samples, its source
unreachable) blocks as well, unless it only warns (``mode: warn``) or the plan says
``preflight: {on_inconclusive: proceed}``: a bake on the same evidence could not pass either.
"""

from __future__ import annotations

from guardrail.judging.evaluate import judge_once
from guardrail.language.loader import Plan
from guardrail.rollout.evaluation import Evaluator


def failing_now(plan: Plan, evaluator: Evaluator, at: float) -> list[str]:
    """``region/policy/check: reason`` of each check that fails at ``at``."""
    return [text for status, text in judge_now(plan, evaluator, at) if status == "fail"]


def refusal(plan: Plan, evaluator: Evaluator, at: float) -> tuple[str | None, list[str], list[str]]:
    """(why the rollout must not start or None, failing checks, inconclusive checks)."""
    verdicts = judge_now(plan, evaluator, at)
    failing = [text for status, text in verdicts if status == "fail"]
    missing = [text for status, text in verdicts if status == "inconclusive"]
    settings = plan.rollout.preflight_settings
    if failing:
        return "preflight: policies already fail before any deploy: " + "; ".join(failing), failing, missing
    if missing and settings is not None and settings.on_inconclusive == "block":
        return ("preflight: evidence is missing before any deploy (preflight: {on_inconclusive: proceed} starts "
                "anyway): " + "; ".join(missing)), failing, missing
    return None, failing, missing


def judge_now(plan: Plan, evaluator: Evaluator, at: float) -> list[tuple[str, str]]:
    """(status, ``region/policy/check: reason``) of each absolute check that does not pass at ``at``."""
    items = [i for i in evaluator.items(plan.rollout.regions)
             if evaluator.checks[(i.policy, i.check)].compare is None]
    readings = evaluator.measure(items, at)
    out = []
    for item in items:
        check = evaluator.checks[(item.policy, item.check)]
        verdict, _ = judge_once(check, at=at, on_no_data=evaluator.policies[item.policy].on_no_data,
                                reading=readings[item])
        if verdict.status != "pass" and not (check.advisory and verdict.status == "inconclusive"):
            out.append((verdict.status, f"{item}: {verdict.reason}"))
    return out
