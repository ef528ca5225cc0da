"""The states a rollout goes through, and the outcome each one means: one model read by
``status``, ``history``, the JSON documents and the report, so that they always agree.

The stored ``state`` is the truth; the outcome is derived from it. A stored ``outcome``
column says how a run *ended* and keeps that value while a later ``resume`` or ``abort``
drives the rollout again (``halted`` while it verifies recovery after an abort), so it is
never shown on its own.

States: pending → deploying → baking → promoted | failed → rolling_back → rolled_back →
verifying_recovery → done; plus halted, refused (a guard stopped it before any deploy),
aborted (a person asked for the rollback) and rollback_failed.
"""

from __future__ import annotations

from guardrail.errors import OUTCOME_EXIT

ENDED = {
    "promoted": "promoted",
    "done": "rolled_back",
    "rollback_failed": "rollback_failed",
    "halted": "halted",
    "refused": "halted",
}
"""A state in which no process drives the rollout any more, and the outcome it means.
``halted`` waits for a person (``resume``, ``approve``, ``abort``)."""

RUNNING = ("pending", "deploying", "baking", "failed", "aborted", "rolling_back", "rolled_back",
           "verifying_recovery")
"""States a driving process passes through; their outcome is not known yet."""

FINISHED = ("promoted", "done", "refused")
"""States nothing can continue (``resume`` refuses them; a failed rollback can be retried)."""


def outcome_of(state: str) -> str | None:
    """The outcome a rollout in ``state`` has (None while it runs)."""
    return ENDED.get(state)


def exit_code_of(state: str) -> int | None:
    """The exit code the command that drove the rollout into ``state`` returned (None while it runs)."""
    outcome = outcome_of(state)
    return int(OUTCOME_EXIT[outcome]) if outcome is not None else None


def label(state: str, reason: str | None = None) -> str:
    """One line for a person: the outcome when the rollout ended, else its state."""
    text = (outcome_of(state) or state).replace("_", " ")
    if state not in ENDED:
        text += " (in progress)"
    return f"{text} — {reason}" if reason else text
