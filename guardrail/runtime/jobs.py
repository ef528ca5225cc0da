"""What a rollout submitted to workers carries, and the names it goes by.

Plain data that crosses the wire (Temporal's JSON payloads): the plan is named by its
path, which every worker must be able to read (a shared checkout or volume), and by
its digest, which a worker checks before it runs anything: a worker that sees other
files refuses the job instead of rolling out something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from guardrail.text import format_duration

START = "start"
RESUME = "resume"

DEFAULT_NAMESPACE = "default"
DEFAULT_TASK_QUEUE = "guardrail"
DEFAULT_HEARTBEAT_TIMEOUT = 30.0
"""Seconds without a heartbeat after which Temporal gives the rollout to another worker."""


@dataclass
class RolloutJob:
    """One workflow run: start a rollout, or resume one that a person continued."""

    rollout_id: str
    service: str
    version: str
    plan: str
    """Absolute path of the plan, as every worker reads it."""
    plan_digest: str
    mode: str = START
    """``start`` (a new rollout under ``rollout_id``) or ``resume`` (a person continued it)."""
    waves: list[dict] = field(default_factory=list)
    """``[{"name", "regions", "bake"}]``, for the names shown in Temporal's UI."""
    override_window: str | None = None
    clock_start: float | None = None
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT
    allow_changed_plan: bool = False
    """A resume that rolls back with the plan as it is now (``abort``)."""
    take_over: str | None = None
    """A person's reason to take the service over (``--take-over``), recorded in their name."""
    requested_by: str = ""
    """Who asked for this run (``--by``, else the environment's name, as for any act of a
    person: ``guardrail.state.people.identity``), recorded with each attempt."""
    search_attributes: list[str] = field(default_factory=list)
    """The custom search attributes the namespace knows, the only ones the workflow sets."""


@dataclass
class AttemptResult:
    """What an attempt reports when the rollout stops running (finished or halted)."""

    rollout_id: str
    outcome: str
    state: str
    reason: str | None
    worker: str
    attempt: int


def workflow_id(service: str, version: str, plan_digest: str) -> str:
    """``rollout-SERVICE-VERSION-DIGEST12``: the same plan and version submitted twice is
    the same workflow, so the second submission attaches to the first."""
    return f"rollout-{_safe(service)}-{_safe(version)}-{plan_digest[:12]}"


def describe_waves(waves: list[dict]) -> str:
    """``canary r3 (30m) → main r1, r2 (1h)``."""
    return " → ".join(f"{w['name']} {', '.join(w['regions'])} ({format_duration(w['bake'])})" for w in waves)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)
