"""Rollouts on Temporal workers: the activity, the worker, and the client helpers.

- ``RolloutActivities.run_rollout`` (``guardrail.rollout``): one attempt at a rollout
  (``guardrail.runtime.attempt``) on a thread of the worker, while the activity
  heartbeats every ``heartbeat_timeout / 4`` and tells the workflow each state the
  rollout enters (``progress`` signals). A guardrail error (a lock held by another
  rollout, a plan that changed) fails it for good; anything else is retried, on any
  worker, and so is a worker that stopped heartbeating.
- ``run_worker``: a worker for one store (``--state``), polling one task queue.
- ``connect``, ``submit``, ``handle_of``, ``outcome``: what ``guardrail rollout
  --temporal``, ``wait``, ``resume`` and friends do with a client.

Only imported when ``--temporal`` is used (``guardrail.runtime.require_temporal``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from datetime import timedelta
from typing import Any, Callable

from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from guardrail import hookimpl
from guardrail.errors import ExitCode, GuardrailError, LockedError, UsageError
from guardrail.runtime.attempt import Runner, run_attempt
from guardrail.runtime.jobs import AttemptResult, RolloutJob, workflow_id
from guardrail.runtime.workflow import ACTIVITY, KEYS, NON_RETRYABLE, RolloutWorkflow

STICKY_TIMEOUT = timedelta(seconds=3)
"""How long a workflow task waits for the worker that ran the workflow last before any
worker takes it (the SDK's default is 10 s): that worker may be the one that died."""

_DONE = object()


class _Progress:
    """Passes the rollout's state changes from the engine's thread to the activity's loop."""

    def __init__(self, rollout_id: str, put: Callable[[Any], None]):
        self.rollout_id, self.put = rollout_id, put

    @hookimpl
    def guardrail_on_event(self, event: dict) -> None:
        kind = event.get("kind", "")
        if kind.startswith("state.") and event.get("rollout_id") == self.rollout_id:
            self.put({"state": kind.removeprefix("state."), "wave": event.get("wave"),
                      "regions": event.get("regions") or [], "at": event.get("at")})


class RolloutActivities:
    """The activities of a worker bound to one store."""

    def __init__(self, state: str, identity: str, *, open_api: Callable[..., Any] | None = None):
        self.state, self.identity = state, identity
        self.open_api = open_api or _open_api

    @activity.defn(name=ACTIVITY)
    async def run_rollout(self, job: RolloutJob) -> AttemptResult:
        info = activity.info()
        runner = Runner(self.identity, info.attempt, info.workflow_id, info.workflow_run_id,
                        info.workflow_namespace, info.task_queue)
        loop = asyncio.get_running_loop()
        notes: asyncio.Queue = asyncio.Queue()
        outcome: dict[str, Any] = {}

        def put(note: Any) -> None:
            loop.call_soon_threadsafe(notes.put_nowait, note)

        def work() -> None:
            try:
                api = self.open_api(self.state, _Progress(job.rollout_id, put))
                outcome["api"] = api
                try:
                    outcome["result"] = run_attempt(api, job, runner)
                finally:
                    api.close()
            except BaseException as exc:  # handed to the activity, below
                outcome["error"] = exc
            finally:
                put(_DONE)

        threading.Thread(target=work, name=f"guardrail-rollout-{job.rollout_id}", daemon=True).start()
        workflow_handle = activity.client().get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
        beat = max(0.2, job.heartbeat_timeout / 4)
        while True:
            activity.heartbeat({"worker": self.identity, "attempt": info.attempt})
            try:
                note = await asyncio.wait_for(notes.get(), timeout=beat)
            except asyncio.TimeoutError:
                continue
            except asyncio.CancelledError:
                # Cancelled (the workflow was, the worker shuts down, or Temporal gave this
                # attempt up): the engine stops before its next step or tick, and leaves
                # the lock for the rollout's next runner (or its expiry).
                api = outcome.get("api")
                if api is not None:
                    why = f"runner {self.identity} (attempt {info.attempt}) cancelled"
                    await asyncio.to_thread(api.stop, why)
                    await asyncio.to_thread(_record_stop, api, job.rollout_id, runner, why)
                raise
            if note is _DONE:
                break
            try:
                await workflow_handle.signal(RolloutWorkflow.on_progress, note)
            except Exception:  # progress is for people: the rollout goes on without it
                pass
        if "error" in outcome:
            raise _as_activity_error(outcome["error"])
        return outcome["result"]


def _record_stop(api: Any, rollout_id: str, runner: Runner, why: str) -> None:
    try:
        row = api.store.rollout(rollout_id)
        at = api.store.last_time(rollout_id) if row["clock"] == "virtual" else time.time()
        api.store.add_event(rollout_id, at or time.time(), "runner.stopped", {**runner.facts(), "why": why})
    except GuardrailError:  # not created yet
        pass


def _open_api(state: str, *plugins: Any):
    from guardrail.api import Guardrail
    from guardrail.plugin.manager import get_plugin_manager

    class _Stoppable(Guardrail):
        """Knows the lease of the rollout it runs, so a cancelled attempt can stop it."""

        lease = None

        def _engine(self, plan, rollout_id, clock, lease, **kw):
            self.lease = lease
            return super()._engine(plan, rollout_id, clock, lease, **kw)

        def stop(self, why: str) -> None:
            """The engine stops before its next step or tick; the lock stays with the rollout
            as a halted one's does (no process), for a person to resume or abort at once."""
            if self.lease is not None:
                self.lease.keep(why)
                self.lease.lost.set()

    return _Stoppable(state, pm=get_plugin_manager(extra_plugins=list(plugins)))


def _as_activity_error(exc: BaseException) -> BaseException:
    if not isinstance(exc, GuardrailError):
        return exc  # retried: a crash of this attempt is like the death of its worker
    facts: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc), "exit_code": int(exc.exit_code)}
    if isinstance(exc, LockedError):
        facts.update(service=exc.service, holder=exc.holder, rollout_id=exc.rollout_id)
    return ApplicationError(str(exc), facts, type=NON_RETRYABLE, non_retryable=True)


def default_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def connect(address: str, namespace: str, *, identity: str | None = None) -> Client:
    try:
        return await Client.connect(address, namespace=namespace, identity=identity or default_identity())
    except Exception as exc:  # the SDK's connection errors are RuntimeErrors with the gRPC reason
        raise UsageError(f"cannot reach Temporal at {address} (namespace {namespace!r}): {exc}") from None


def worker(client: Client, state: str, *, task_queue: str, identity: str, max_concurrent: int = 200) -> Worker:
    """A worker running rollouts against ``state`` (anything ``Guardrail(state)`` opens)."""
    activities = RolloutActivities(state, identity)
    return Worker(
        client, task_queue=task_queue, workflows=[RolloutWorkflow], activities=[activities.run_rollout],
        identity=identity, max_concurrent_activities=max_concurrent,
        # The attempt runs on its own thread; the activity itself only heartbeats and signals.
        max_heartbeat_throttle_interval=timedelta(seconds=1), default_heartbeat_throttle_interval=timedelta(seconds=1),
        # Without eager dispatch, the activity is not always given to the worker holding the
        # workflow's sticky queue: the death of one worker then rarely stalls both.
        disable_eager_activity_execution=True, sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
        graceful_shutdown_timeout=timedelta(seconds=2),
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("guardrail")))


async def run_worker(address: str, namespace: str, task_queue: str, state: str, identity: str,
                     ready: Callable[[], None] = lambda: None) -> None:
    """Run a worker until cancelled (Ctrl-C, SIGTERM)."""
    client = await connect(address, namespace, identity=identity)
    async with worker(client, state, task_queue=task_queue, identity=identity):
        ready()
        await asyncio.Event().wait()


async def usable_search_attributes(client: Client) -> list[str]:
    """The guardrail search attributes the namespace has registered (none if it cannot say)."""
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace))
    except Exception:  # not allowed to ask (a hosted namespace): the memo still says it all
        return []
    return [name for name in KEYS if name in listed.custom_attributes]


async def submit(client: Client, job: RolloutJob, task_queue: str, *,
                 workflow: str | None = None) -> tuple[WorkflowHandle, str, bool]:
    """Start the rollout's workflow, or attach to the one running for the same plan.

    ``workflow``: the workflow id (default: derived from the job's service, version and
    plan digest; a resume passes the one its rollout started with). Returns the handle,
    the id of the rollout it runs and whether that run was already there.
    """
    job.search_attributes = await usable_search_attributes(client)
    values = {"GuardrailService": job.service, "GuardrailVersion": job.version, "GuardrailRollout": job.rollout_id}
    pairs = [SearchAttributePair(KEYS[name], value) for name, value in values.items() if name in job.search_attributes]
    handle = await client.start_workflow(
        RolloutWorkflow.run, job, id=workflow or workflow_id(job.service, job.version, job.plan_digest),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        memo={"rollout_id": job.rollout_id, "service": job.service, "version": job.version, "plan": job.plan,
              "mode": job.mode, "requested_by": job.requested_by},
        search_attributes=TypedSearchAttributes(pairs) if pairs else None,
        static_summary=f"rollout {job.service} {job.version}",
        static_details=f"plan {job.plan}\nrollout {job.rollout_id} ({job.mode}, by {job.requested_by})")
    memo = await (await handle.describe()).memo()
    running = memo.get("rollout_id", job.rollout_id)
    return handle, running, running != job.rollout_id or memo.get("mode") != job.mode


def handle_of(client: Client, service: str, version: str, plan_digest: str) -> WorkflowHandle:
    """The latest workflow run of a rollout's plan."""
    return client.get_workflow_handle_for(RolloutWorkflow.run, workflow_id(service, version, plan_digest))


async def rollout_of(handle: WorkflowHandle) -> str | None:
    """The rollout id the workflow run carries (its memo), or None when there is no such run."""
    from temporalio.service import RPCError

    try:
        return (await (await handle.describe()).memo()).get("rollout_id")
    except RPCError:
        return None


async def outcome(handle: WorkflowHandle) -> AttemptResult:
    """Wait for the workflow run; a guardrail error of the activity is raised again here."""
    try:
        return AttemptResult(**await handle.result())
    except WorkflowFailureError as failure:
        raise _as_guardrail_error(failure) from None


def _as_guardrail_error(failure: WorkflowFailureError) -> GuardrailError:
    cause: BaseException | None = failure
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__ or getattr(cause, "cause", None)
    facts = cause.details[0] if isinstance(cause, ApplicationError) and cause.details else None
    if not isinstance(facts, dict):
        error = GuardrailError(f"the rollout's workflow failed: {failure.cause or failure}")
        error.exit_code = ExitCode.HALTED
        return error
    if facts.get("error") == "LockedError":
        return LockedError(facts["service"], facts["holder"], facts["rollout_id"])
    error = GuardrailError(facts["message"])
    error.exit_code = ExitCode(facts["exit_code"])
    return error


__all__ = ["RolloutActivities", "connect", "worker", "run_worker", "submit", "handle_of", "rollout_of", "outcome"]
