"""Workflow and activity of the Temporal design spike (tests/test_temporal_fixture.py).

``SpikeRollout`` stands for a rollout: it records the wave in a search attribute, runs
one long activity ``guardrail.bake`` that heartbeats a resume point after each step,
can wait for an ``approve`` signal, and answers the ``phase`` query.

The worker's sandbox re-imports this module for every workflow run, so it has no
side effects at import and imports only the standard library and ``temporalio``.
Anything heavier goes inside ``with workflow.unsafe.imports_passed_through():``: a
plain ``import guardrail.engine`` here makes ``Worker(...)`` refuse the workflow
(``RestrictedWorkflowAccessError``: httpx subclasses ``urllib.request.Request``,
which the sandbox restricts); passed through, it imports once and works.
Activities run outside the sandbox: they may read the clock and the environment.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

TASK_QUEUE = "guardrail-spike"
WORKER_ENV = "TEMPORAL_SPIKE_WORKER"
"""The worker script's identity, for the activity to say who ran it."""

SERVICE = SearchAttributeKey.for_keyword("GuardrailService")
ROLLOUT = SearchAttributeKey.for_keyword("GuardrailRollout")
WAVE = SearchAttributeKey.for_keyword("GuardrailWave")
REGIONS = SearchAttributeKey.for_keyword_list("GuardrailRegions")


@dataclass
class BakeInput:
    wave: str
    regions: list[str]
    steps: int = 10
    step_seconds: float = 0.3


@dataclass
class BakeResult:
    steps_run: list[int]
    """The steps this attempt ran (not those an earlier attempt had already done)."""
    resumed_from: dict | None
    """The heartbeat details this attempt started with: the last resume point the server had."""
    attempt: int
    worker: str
    started_at: float
    """Wall-clock time at which this attempt began."""


@dataclass
class SpikeInput:
    wave: str = "canary"
    regions: list[str] = field(default_factory=lambda: ["r3"])
    steps: int = 10
    step_seconds: float = 0.3
    heartbeat_timeout: float = 2.0
    wait_for_approval: bool = False


@activity.defn(name="guardrail.bake")
async def bake(job: BakeInput) -> BakeResult:
    """Bake ``job.regions`` step by step, heartbeating ``{"step": N, ...}`` after each step.

    A retried attempt starts after the last step its predecessor reported.
    """
    info = activity.info()
    worker = os.environ.get(WORKER_ENV, "in-process")
    started_at = time.time()
    resumed_from = dict(info.heartbeat_details[0]) if info.heartbeat_details else None
    first = resumed_from["step"] + 1 if resumed_from else 0
    # At once, so that a describe shows which worker holds the new attempt.
    activity.heartbeat({"step": first - 1, "worker": worker, "attempt": info.attempt})
    done = []
    for step in range(first, job.steps):
        await asyncio.sleep(job.step_seconds)
        done.append(step)
        activity.heartbeat({"step": step, "worker": worker, "attempt": info.attempt})
    return BakeResult(done, resumed_from, info.attempt, worker, started_at)


@workflow.defn(name="GuardrailSpikeRollout")
class SpikeRollout:
    def __init__(self) -> None:
        self.phase = "starting"
        self.approved_by: str | None = None

    @workflow.run
    async def run(self, spike: SpikeInput) -> dict:
        workflow.upsert_search_attributes([WAVE.value_set(spike.wave), REGIONS.value_set(spike.regions)])
        self.phase = f"baking {spike.wave}"
        result = await workflow.execute_activity(
            bake, BakeInput(spike.wave, spike.regions, spike.steps, spike.step_seconds),
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=spike.heartbeat_timeout),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5),
            summary=f"bake {spike.wave}: {', '.join(spike.regions)}",
        )
        if spike.wait_for_approval:
            self.phase = "awaiting approval"
            await workflow.wait_condition(lambda: self.approved_by is not None)
        workflow.upsert_memo({"approved_by": self.approved_by})
        self.phase = "done"
        return {"bake": result, "approved_by": self.approved_by}

    @workflow.signal(name="approve")
    def approve(self, by: str) -> None:
        self.approved_by = by

    @workflow.query(name="phase")
    def current_phase(self) -> str:
        return self.phase
