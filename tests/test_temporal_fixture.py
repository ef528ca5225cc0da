"""The Temporal dev server fixture, and a design spike for rollouts run by Temporal workers.

What the spike shows, on a real ``temporal server start-dev`` (tests/support/temporal.py)
with the SDK of the ``test`` extra:

- a long activity heartbeats a resume point (``activity.heartbeat(details)``); when the
  worker running it is SIGKILLed, the server notices the missed heartbeat after
  ``heartbeat_timeout`` and retries the activity on the other worker process, which
  reads the last details the server received in ``activity.info().heartbeat_details``
  and carries on from there; the workflow completes;
- starting a workflow whose id is running raises ``WorkflowAlreadyStartedError``
  (``run_id`` of the running one); ``client.get_workflow_handle(id)`` attaches to it, and
  ``id_conflict_policy=USE_EXISTING`` returns a handle on it instead of raising;
  after it has closed, ``id_reuse_policy=REJECT_DUPLICATE`` refuses the id, the default
  (``ALLOW_DUPLICATE``) starts a new run;
- signals (and signal-with-start), queries, a memo (set at start, ``upsert_memo``), custom
  search attributes registered by ``--search-attribute`` at server start or at run time
  by the operator service, listed with a visibility query;
- activity names (``activity.defn(name=...)``) and summaries (``summary=``) as the UI
  shows them (the history's ``activity_type`` and ``user_metadata.summary``).

Timings are printed (``pytest -s``). Measured on a 2-core machine with temporalio 1.35.0
and Temporal CLI 1.9.1 (server 1.32.0): the dev server is ready 0.3-0.8 s after it is
started (1.6 s with a cold disk cache) and stops in about 1.5 s on SIGTERM; a SIGKILLed
worker's activity starts again on the other worker about one second after the heartbeat
timeout (2.7 s for a 1 s timeout, 3.0 s for 2 s, 6.0 s for 5 s; retry backoff 0.2 s).

Two findings for the design:

- the worker that completes a workflow task is handed the activity it schedules
  (eager activity dispatch), so the worker that dies in the middle of an activity is
  also the one holding the workflow's sticky queue: after the retried activity
  completes, the next workflow task waits out ``sticky_queue_schedule_to_start_timeout``
  (10 s by default, 2 s in the spike's workers) before another worker takes it. With
  ``Worker(disable_eager_activity_execution=True)`` the activity may land on either
  worker, and when the dead one did not hold the sticky queue that wait is 0.02 s;
- the SDK sends heartbeats at most every 80% of the heartbeat timeout unless
  ``max_heartbeat_throttle_interval`` is lower (0.3 s here): a retry resumes from the
  last details the server *received*, which may be older than the last ``heartbeat()``.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from support import temporal as support_temporal
from support.temporal import die_with_parent, stop

pytestmark = pytest.mark.temporal

WORKER_SCRIPT = Path(__file__).resolve().parent / "support" / "temporal_worker.py"


def run(coroutine, timeout: float = 120.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


async def eventually(probe, timeout: float = 20.0, interval: float = 0.1):
    """``await probe()`` until it returns something truthy; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"{probe.__name__} did not hold within {timeout}s"
        await asyncio.sleep(interval)


@contextmanager
def worker_processes(server, identities: list[str], task_queue: str, logs: Path,
                     timeout: float = 60.0) -> Iterator[dict[str, subprocess.Popen]]:
    """One worker process (tests/support/temporal_worker.py) per identity, each polling ``task_queue``."""
    logs.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen] = {}
    try:
        for identity in identities:
            processes[identity] = subprocess.Popen(
                [sys.executable, str(WORKER_SCRIPT), server.address, server.namespace, identity, task_queue],
                stdout=subprocess.PIPE, stderr=open(logs / f"{identity}.log", "w"), stdin=subprocess.DEVNULL,
                text=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        for identity, process in processes.items():
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = process.stdout.readline() if ready else ""
            assert line.strip() == "ready", \
                f"worker {identity} did not start:\n{(logs / f'{identity}.log').read_text()}"
        yield processes
    finally:
        for process in processes.values():
            stop(process, timeout=5)
            process.stdout.close()


def test_dev_server_serves_its_namespace_with_the_search_attributes_it_was_given(temporal_server):
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    print(f"\ntemporal dev server {temporal_server.address} ready in {temporal_server.startup_seconds:.2f}s")
    assert temporal_server.address.startswith("127.0.0.1:")

    async def check():
        client = await temporal_server.connect()
        request = ListSearchAttributesRequest(namespace=temporal_server.namespace)
        listed = await client.operator_service.list_search_attributes(request)
        custom = {name: IndexedValueType.Name(kind) for name, kind in listed.custom_attributes.items()}
        # The dev server pre-registers no custom attribute: these are exactly the flags' ones.
        assert custom == {name: f"INDEXED_VALUE_TYPE_{kind.upper().replace('KEYWORDLIST', 'KEYWORD_LIST')}"
                          for name, kind in support_temporal.SEARCH_ATTRIBUTES.items()}
        assert {"WorkflowId", "WorkflowType", "ExecutionStatus", "StartTime"} <= set(listed.system_attributes)
        # More can be registered while it runs (the operator service; the CLI's
        # ``temporal operator search-attribute create`` does the same).
        await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=temporal_server.namespace,
            search_attributes={"GuardrailSpikeAttempt": IndexedValueType.INDEXED_VALUE_TYPE_INT}))
        listed = await client.operator_service.list_search_attributes(request)
        assert listed.custom_attributes["GuardrailSpikeAttempt"] == IndexedValueType.INDEXED_VALUE_TYPE_INT

    run(check())


def test_missing_binary_fails_and_says_what_installs_it(monkeypatch):
    monkeypatch.setattr(support_temporal.sysconfig, "get_path", lambda name: "/nonexistent")
    monkeypatch.setattr(support_temporal.sys, "executable", "/nonexistent/python")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(AssertionError, match="scripts/test installs it"):
        support_temporal.temporal_binary()


@pytest.mark.slow
def test_activity_resumes_from_its_last_heartbeat_on_another_worker_after_a_sigkill(temporal_server, tmp_path):
    from support.temporal_spike import SpikeInput, SpikeRollout

    task_queue = f"spike-failover-{uuid.uuid4().hex[:8]}"
    heartbeat_timeout = 2.0
    steps = 12

    async def failover(workers: dict[str, subprocess.Popen]):
        client = await temporal_server.connect()
        handle = await client.start_workflow(
            SpikeRollout.run, SpikeInput(steps=steps, step_seconds=0.3, heartbeat_timeout=heartbeat_timeout),
            id=f"spike-failover-{uuid.uuid4().hex[:8]}", task_queue=task_queue)

        async def reported_step_3():
            pending = (await handle.describe()).raw_description.pending_activities
            if pending and pending[0].heartbeat_details.payloads:
                details = (await client.data_converter.decode(pending[0].heartbeat_details.payloads))[0]
                if details["step"] >= 3:
                    return pending[0], details
            return None

        pending, seen = await eventually(reported_step_3, interval=0.05)
        victim = pending.last_worker_identity
        assert victim in workers and pending.attempt == 1 and pending.activity_type.name == "guardrail.bake"
        workers[victim].send_signal(signal.SIGKILL)
        killed_at = time.time()
        survivor = next(name for name in workers if name != victim)

        result = await handle.result()
        completed_at = time.time()
        bake = result["bake"]
        assert bake["worker"] == survivor and bake["attempt"] == 2
        resumed = bake["resumed_from"]
        assert resumed["worker"] == victim and resumed["attempt"] == 1
        assert resumed["step"] >= seen["step"]          # the last point the server had, not a stale one
        assert bake["steps_run"] == list(range(resumed["step"] + 1, steps))   # nothing done twice
        resume_seconds = bake["started_at"] - killed_at
        assert heartbeat_timeout - 1.0 < resume_seconds < heartbeat_timeout + 10.0

        history = await handle.fetch_history()
        times = {}
        for event in history.events:
            for kind in ("activity_task_completed", "workflow_execution_completed"):
                if event.HasField(f"{kind}_event_attributes"):
                    times[kind] = event.event_time.ToDatetime().timestamp()
        first_task_by = next(event.workflow_task_completed_event_attributes.identity for event in history.events
                             if event.HasField("workflow_task_completed_event_attributes"))
        last_task_delay = times["workflow_execution_completed"] - times["activity_task_completed"]
        print(f"\nkilled {victim} at step {seen['step']} (resume point sent: {resumed['step']}); "
              f"{survivor} resumed {resume_seconds:.2f}s after SIGKILL (heartbeat_timeout "
              f"{heartbeat_timeout}s, retry after 0.2s); first workflow task by {first_task_by}; "
              f"activity done → workflow done {last_task_delay:.2f}s; "
              f"SIGKILL → workflow result {completed_at - killed_at:.2f}s")
        # The workflow's sticky queue was the dead worker's: its task waited the workers'
        # 2 s sticky timeout, not the SDK's default 10 s.
        assert last_task_delay < 8.0

    with worker_processes(temporal_server, ["worker-a", "worker-b"], task_queue, tmp_path) as workers:
        run(failover(workers))


@pytest.mark.slow
def test_attach_signal_memo_search_attributes_and_activity_names(temporal_server):
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.common import (SearchAttributeKey, SearchAttributePair, TypedSearchAttributes,
                                   WorkflowIDConflictPolicy, WorkflowIDReusePolicy)
    from temporalio.exceptions import WorkflowAlreadyStartedError
    from temporalio.service import RPCError, RPCStatusCode
    from temporalio.worker import Worker

    from support.temporal_spike import REGIONS, ROLLOUT, SERVICE, WAVE, SpikeInput, SpikeRollout, bake

    task_queue = f"spike-attach-{uuid.uuid4().hex[:8]}"
    rollout = uuid.uuid4().hex[:8]
    workflow_id = f"rollout-mail-sender-{rollout}"
    waiting = SpikeInput(steps=2, step_seconds=0.05, wait_for_approval=True)

    async def scenario():
        client = await temporal_server.connect()
        # An in-process worker this time (the failover test runs them as processes).
        async with Worker(client, task_queue=task_queue, workflows=[SpikeRollout], activities=[bake]):
            handle = await client.start_workflow(
                SpikeRollout.run, waiting, id=workflow_id, task_queue=task_queue,
                memo={"plan": "plans/mail-sender.yaml", "version": "2023.01.05"},
                search_attributes=TypedSearchAttributes([SearchAttributePair(SERVICE, "mail-sender"),
                                                         SearchAttributePair(ROLLOUT, rollout)]),
                static_summary="mail-sender 2023.01.05: canary r3 → main r1, r2")

            # A second start with the running id: refused, naming the running run; attach to it.
            with pytest.raises(WorkflowAlreadyStartedError) as refused:
                await client.start_workflow(SpikeRollout.run, waiting, id=workflow_id, task_queue=task_queue)
            assert refused.value.run_id == handle.result_run_id
            attached = client.get_workflow_handle_for(SpikeRollout.run, workflow_id)
            assert (await attached.describe()).run_id == handle.result_run_id
            existing = await client.start_workflow(SpikeRollout.run, waiting, id=workflow_id, task_queue=task_queue,
                                                   id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
            assert existing.result_run_id == handle.result_run_id

            async def awaiting_approval():
                return await attached.query(SpikeRollout.current_phase) == "awaiting approval"

            await eventually(awaiting_approval)
            await attached.signal(SpikeRollout.approve, "alice")
            result = await attached.result()
            assert result["approved_by"] == "alice" and result["bake"]["steps_run"] == [0, 1]

            described = await handle.describe()
            assert described.status == WorkflowExecutionStatus.COMPLETED
            assert await described.memo() == {"plan": "plans/mail-sender.yaml", "version": "2023.01.05",
                                              "approved_by": "alice"}
            attributes = described.typed_search_attributes
            assert (attributes.get(SERVICE), attributes.get(ROLLOUT), attributes.get(WAVE), attributes.get(REGIONS)) \
                == ("mail-sender", rollout, "canary", ["r3"])
            assert await described.static_summary() == "mail-sender 2023.01.05: canary r3 → main r1, r2"

            async def listed():   # visibility is eventually consistent
                query = f'GuardrailService = "mail-sender" AND GuardrailRollout = "{rollout}" AND GuardrailWave = "canary"'
                return [execution.id async for execution in client.list_workflows(query)]

            assert await eventually(listed) == [workflow_id]

            # What the UI shows for the activity: its registered name and the summary.
            history = await handle.fetch_history()
            scheduled = next(event for event in history.events
                             if event.HasField("activity_task_scheduled_event_attributes"))
            assert scheduled.activity_task_scheduled_event_attributes.activity_type.name == "guardrail.bake"
            summary = await client.data_converter.decode([scheduled.user_metadata.summary])
            assert summary == ["bake canary: r3"]

            # Once closed: REJECT_DUPLICATE refuses the id; the default starts a new run, here
            # with signal-with-start, so it is approved from its first workflow task.
            with pytest.raises(WorkflowAlreadyStartedError):
                await client.start_workflow(SpikeRollout.run, waiting, id=workflow_id, task_queue=task_queue,
                                            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
            again = await client.start_workflow(SpikeRollout.run, waiting, id=workflow_id, task_queue=task_queue,
                                                start_signal="approve", start_signal_args=["bob"])
            assert again.result_run_id != handle.result_run_id
            assert (await again.result())["approved_by"] == "bob"

            # A search attribute the server does not know is refused at start.
            with pytest.raises(RPCError) as unknown:
                await client.start_workflow(
                    SpikeRollout.run, waiting, id=f"{workflow_id}-unknown", task_queue=task_queue,
                    search_attributes=TypedSearchAttributes([
                        SearchAttributePair(SearchAttributeKey.for_keyword("NotRegistered"), "x")]))
            assert unknown.value.status == RPCStatusCode.INVALID_ARGUMENT

    run(scenario())
