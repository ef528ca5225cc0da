"""The Temporal workflow of a rollout: its lifecycle and what Temporal's UI shows of it.

The workflow does not hold the procedure: it runs one activity, ``guardrail.rollout``
(``guardrail.runtime.temporal``), which runs the engine against the shared store and
heartbeats while it does. When the worker running it dies, Temporal notices the missing
heartbeats after ``heartbeat_timeout`` and schedules the next attempt on any worker,
which continues the same rollout from the store (``guardrail.runtime.attempt``). Bakes
are the engine's: on a simulated fleet's virtual clock they take no real time, which
workflow timers (the dev server cannot skip time) could not offer.

What a person sees in the UI: the workflow is ``rollout`` with the summary ``rollout
SERVICE VERSION``, its waves in the details; its current details follow the rollout
(``baking canary: r3``), fed by ``progress`` signals from the activity; the memo holds
the rollout id, service, version and, at the end, the outcome; the search attributes
the namespace knows (``GuardrailService``, ``GuardrailVersion``, ``GuardrailRollout``,
``GuardrailWave``, ``GuardrailRegions``, ``GuardrailOutcome``) are set as they change.

The SDK's sandbox re-imports this module for every run: it has no side effect at import,
and guardrail's modules pass through the sandbox (see ``temporal.worker``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from guardrail.runtime.jobs import AttemptResult, RolloutJob, describe_waves

ACTIVITY = "guardrail.rollout"
WORKFLOW = "rollout"
NON_RETRYABLE = "GuardrailError"
"""Type prefix of the activity errors that a retry cannot fix (a lock, a changed plan)."""

ATTEMPT_TIMEOUT = timedelta(days=14)
"""The longest one attempt may run: a rollout that halts ends its attempt."""

KEYS = {
    "GuardrailService": SearchAttributeKey.for_keyword("GuardrailService"),
    "GuardrailVersion": SearchAttributeKey.for_keyword("GuardrailVersion"),
    "GuardrailRollout": SearchAttributeKey.for_keyword("GuardrailRollout"),
    "GuardrailWave": SearchAttributeKey.for_keyword("GuardrailWave"),
    "GuardrailRegions": SearchAttributeKey.for_keyword_list("GuardrailRegions"),
    "GuardrailOutcome": SearchAttributeKey.for_keyword("GuardrailOutcome"),
}


def retry_policy() -> RetryPolicy:
    """Attempts go on while workers die: the store keeps every attempt from repeating a step."""
    return RetryPolicy(initial_interval=timedelta(milliseconds=500), backoff_coefficient=2.0,
                       maximum_interval=timedelta(seconds=30), maximum_attempts=0,
                       non_retryable_error_types=[NON_RETRYABLE])


@workflow.defn(name=WORKFLOW)
class RolloutWorkflow:
    def __init__(self) -> None:
        self.progress: dict = {"state": "submitted"}
        self.usable: set[str] = set()

    @workflow.run
    async def run(self, job: RolloutJob) -> dict:
        self.usable = set(job.search_attributes)
        workflow.set_current_details(f"{job.mode}: {describe_waves(job.waves)}")
        try:
            result: AttemptResult = await workflow.execute_activity(
                ACTIVITY, job, result_type=AttemptResult, start_to_close_timeout=ATTEMPT_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=job.heartbeat_timeout), retry_policy=retry_policy(),
                # A cancelled workflow ends once its rollout has stopped, not before.
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"{'resume' if job.mode == 'resume' else 'run'} {job.service} {job.version}: "
                        f"{describe_waves(job.waves)}")
        except Exception:
            self._end("error", "the rollout could not run: see the failure")
            raise
        self._end(result.outcome, f"{result.outcome} ({result.state})" + (f": {result.reason}" if result.reason else ""))
        return asdict(result)

    def _end(self, outcome: str, details: str) -> None:
        workflow.upsert_memo({"outcome": outcome})
        self._set("GuardrailOutcome", outcome)
        workflow.set_current_details(details)

    def _set(self, name: str, value) -> None:
        if name in self.usable:
            workflow.upsert_search_attributes([KEYS[name].value_set(value)])

    @workflow.signal(name="progress")
    def on_progress(self, note: dict) -> None:
        """From the activity: the rollout's state changed (``{"state", "wave", "regions"}``)."""
        self.progress = note
        if note.get("wave"):
            self._set("GuardrailWave", note["wave"])
        if note.get("regions"):
            self._set("GuardrailRegions", list(note["regions"]))
        where = " ".join(filter(None, [note.get("wave"), ", ".join(note.get("regions") or [])]))
        workflow.set_current_details(f"{note.get('state')} {where}".strip())

    @workflow.query(name="progress")
    def current(self) -> dict:
        return self.progress
