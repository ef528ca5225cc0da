"""Rollouts on Temporal workers: ``guardrail worker``, ``guardrail wait``, and the
``--temporal`` paths of ``rollout``, ``resume``, ``approve`` and ``abort``.

A submitted rollout is followed through the shared store, so it prints what a local run
prints (without the live per-tick table), ends with the same summary or JSON, and exits
with the same code. ``--detach`` prints one JSON line instead and exits 0::

    {"rollout_id": "20230105-171000-1a2b3c", "workflow_id": "rollout-mail-sender-2023.01.05-3f9a0c1d2e4b",
     "attached": false, "temporal": "temporal.internal:7233", "namespace": "default", "task_queue": "guardrail"}

``attached`` is true when the same plan and version was already running: the command
attached to that rollout instead of starting another.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from guardrail.cli.options import StateOption, state_path
from guardrail.cli.report_commands import JunitOption, ReportOption
from guardrail.cli.rollout_commands import IdArgument, Output, OutputOption, _run
from guardrail.cli.temporal_options import (HEARTBEAT_ENV, TEMPORAL_ENV, NamespaceOption, TaskQueueOption,
                                           TemporalOption)

def _heartbeat_timeout() -> float:
    from guardrail.runtime.jobs import DEFAULT_HEARTBEAT_TIMEOUT

    return float(os.environ.get(HEARTBEAT_ENV, "") or DEFAULT_HEARTBEAT_TIMEOUT)


def _listener(api) -> Any:
    from guardrail.cli.progress import Progress

    return next((p for p in api.pm.get_plugins() if isinstance(p, Progress)), None)


def _where(api, rollout_id: str, namespace: str | None, task_queue: str | None) -> tuple[str, str]:
    """The namespace and task queue asked for, else those the rollout last ran on."""
    from guardrail.runtime.attempt import ATTEMPT_EVENT
    from guardrail.runtime.jobs import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE

    attempts = api.store.events(rollout_id, ATTEMPT_EVENT)
    last = attempts[-1] if attempts else {}
    return (namespace or last.get("namespace") or DEFAULT_NAMESPACE,
            task_queue or last.get("task_queue") or DEFAULT_TASK_QUEUE)


async def _follow(api, handle, rollout_id: str, output: Output, since: int = 0):
    from guardrail.errors import NotFound, StateError
    from guardrail.runtime.follow import Follower, follow
    from guardrail.runtime.temporal import outcome

    listener = _listener(api) if output is Output.text else None
    follower = Follower(api.store, rollout_id, listener.guardrail_on_event if listener else lambda event: None)
    follower.seen = since
    ended = await follow(follower, outcome(handle))
    try:
        return api.result(api.store.rollout(rollout_id)["id"])
    except NotFound:
        raise StateError(f"rollout {rollout_id} ended on the workers ({ended.outcome}) but is not in "
                         f"{api.state_path}: give this command the workers' --state") from None


def _announce(output: Output, text: str) -> None:
    from guardrail.cli import out_console

    if output is Output.text:
        out_console.print(text, highlight=False)


async def _submit(api, job, address: str, namespace: str, task_queue: str, output: Output, detach: bool,
                  workflow: str | None = None, since: int = 0):
    from guardrail.runtime.temporal import connect, submit

    client = await connect(address, namespace)
    handle, rollout_id, attached = await submit(client, job, task_queue, workflow=workflow)
    if detach:
        return {"rollout_id": rollout_id, "workflow_id": handle.id, "attached": attached, "temporal": address,
                "namespace": namespace, "task_queue": task_queue}
    if attached:
        _announce(output, f"attached to rollout {rollout_id}, already running on Temporal (workflow {handle.id})")
    else:
        _announce(output, f"submitted rollout {rollout_id} to Temporal (workflow {handle.id}, "
                          f"task queue {task_queue})")
    return await _follow(api, handle, rollout_id, output, since)


def rollout_on_temporal(plan: Path, state: Path | None, output: Output, address: str, namespace: str | None,
                        task_queue: str | None, detach: bool, override_window: str | None,
                        clock_start: float | None, report: Path | None, junit: Path | None,
                        by: str | None = None, take_over: str | None = None) -> None:
    """``guardrail rollout PLAN --temporal HOST:PORT``; ``by``: who submits (``--by``), the
    name the workers record with each attempt, a window override and a take-over."""
    from guardrail.runtime import require_temporal

    require_temporal()

    def call(api):
        from guardrail.api import plan_digest
        from guardrail.runtime.jobs import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE, RolloutJob
        from guardrail.state import people
        from guardrail.state.ids import new_rollout_id

        loaded = api.load(plan)  # a bad plan fails here, with its file:line:column, before anything is submitted
        rollout = loaded.rollout
        job = RolloutJob(rollout_id=new_rollout_id(time.time()), service=rollout.service,
                         version=rollout.change.version, plan=str(loaded.path.absolute()),
                         plan_digest=plan_digest(loaded),
                         waves=[{"name": w.name, "regions": w.regions, "bake": w.bake} for w in rollout.waves],
                         override_window=override_window, clock_start=clock_start,
                         heartbeat_timeout=_heartbeat_timeout(), requested_by=people.identity(by, api.environ),
                         take_over=take_over)
        result = asyncio.run(_submit(api, job, address, namespace or DEFAULT_NAMESPACE,
                                     task_queue or DEFAULT_TASK_QUEUE, output, detach))
        if detach:  # out of the event loop first: the client's threads end with it
            typer.echo(json.dumps(result))
            raise typer.Exit(0)
        return result

    _run(state, output, call, report, junit)


def resume_on_temporal(api, rollout_id: str, output: Output, address: str, namespace: str | None = None,
                       task_queue: str | None = None, *, allow_changed_plan: bool = False, by: str | None = None,
                       reason: str | None = None, record: bool = True, take_over: str | None = None,
                       override_window: str | None = None):
    """Continue a halted (or abandoned) rollout on the workers: a new run of its workflow,
    in ``resume`` mode; returns its result once it stops again.

    ``record``: the person's ``resume`` (``by``, ``reason``) is recorded here, where it was
    typed, before the run is submitted; ``approve`` and ``abort`` record their own act
    instead. The worker records none: it is not the one who asked. A ``take_over`` or an
    ``override_window`` travels with the run: the worker records it, in ``by``'s name,
    when it acts on it."""
    from guardrail.api import plan_digest
    from guardrail.runtime import require_temporal
    from guardrail.runtime.jobs import RESUME, RolloutJob, workflow_id
    from guardrail.state import people

    require_temporal()
    row = api.store.rollout(rollout_id)
    who = people.identity(by, api.environ)
    plan = api.load(row["plan_path"])
    started = api.store.events(row["id"], "rollout.started")
    waves = started[0]["waves"] if started else []
    namespace, task_queue = _where(api, row["id"], namespace, task_queue)
    if record and not take_over and not (row["finished_at"] and row["state"] != "rollback_failed"):
        # (a finished one is only shown; a take-over is its own act)
        people.record(api.store, row["id"], people.act("resume", who, reason))
    job = RolloutJob(rollout_id=row["id"], service=row["service"], version=row["version"], plan=row["plan_path"],
                     plan_digest=plan_digest(plan), mode=RESUME, waves=waves, heartbeat_timeout=_heartbeat_timeout(),
                     allow_changed_plan=allow_changed_plan, requested_by=who, take_over=take_over,
                     override_window=override_window)
    workflow = workflow_id(row["service"], row["version"], row["plan_digest"])
    events = api.store.events(row["id"])  # shown already: only what happens from now on is
    return asyncio.run(_submit(api, job, address, namespace, task_queue, output, False, workflow,
                               events[-1]["seq"] if events else 0))


def abort_on_temporal(api, rollout_id: str, reason: str, output: Output, address: str, by: str | None = None):
    """Record the abort (who, why), then follow the workflow run that rolls back: the one
    running the rollout (it honours the request at its next evaluation), else a new one."""
    api.abort_requested_of_running(rollout_id, reason, by=by)
    return resume_on_temporal(api, rollout_id, output, address, allow_changed_plan=True, by=by, record=False)


def wait(rollout_id: IdArgument, temporal: TemporalOption = None, namespace: NamespaceOption = None,
         state: StateOption = None, output: OutputOption = Output.text, report: ReportOption = None,
         junit: JunitOption = None) -> None:
    """Attach to a rollout running on Temporal workers and follow it until it stops.

    Exit codes are those of `guardrail rollout`.
    """
    from guardrail.errors import StateError, UsageError
    from guardrail.runtime import require_temporal

    if not temporal:
        raise UsageError(f"wait needs the Temporal address: --temporal HOST:PORT (or ${TEMPORAL_ENV})")
    require_temporal()

    async def attach(api):
        from guardrail.runtime.temporal import connect, handle_of, rollout_of

        row = api.store.rollout(rollout_id)
        space, _ = _where(api, row["id"], namespace, None)
        client = await connect(temporal, space)
        handle = handle_of(client, row["service"], row["version"], row["plan_digest"])
        if await rollout_of(handle) != row["id"]:
            if row["finished_at"] or row["state"] == "halted":
                return api.result(row["id"])
            raise StateError(f"rollout {row['id']} has no workflow in namespace {space!r} at {temporal}; "
                             f"it is {row['state']}: `guardrail status {row['id']}`")
        return await _follow(api, handle, row["id"], output)

    _run(state, output, lambda api: asyncio.run(attach(api)), report, junit)


def worker(
    temporal: TemporalOption = None,
    state: StateOption = None,
    namespace: NamespaceOption = None,
    task_queue: TaskQueueOption = None,
    identity: Annotated[str | None, typer.Option(
        help="this worker's name in Temporal and in the rollouts' events (default HOST:PID)")] = None,
) -> None:
    """Run rollouts submitted with `guardrail rollout --temporal`; run as many as you like.

    Every worker of a task queue must use the same state (--state: a PostgreSQL URL
    when they run on several machines) and see the plans at the same paths.
    """
    from guardrail.cli import out_console
    from guardrail.errors import UsageError
    from guardrail.runtime import require_temporal
    from guardrail.runtime.jobs import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE

    if not temporal:
        raise UsageError(f"worker needs the Temporal address: --temporal HOST:PORT (or ${TEMPORAL_ENV})")
    require_temporal()
    from guardrail.runtime.temporal import default_identity, run_worker

    name = identity or default_identity()
    namespace, task_queue = namespace or DEFAULT_NAMESPACE, task_queue or DEFAULT_TASK_QUEUE
    location = str(state_path(state))

    def ready() -> None:
        out_console.print(f"worker {name} ready: task queue {task_queue!r} of {temporal} (namespace {namespace!r}), "
                          f"state {location}", highlight=False)

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)  # a graceful stop, like Ctrl-C
        try:
            await run_worker(temporal, namespace, task_queue, location, name, ready)
        except asyncio.CancelledError:
            pass

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    out_console.print(f"worker {name} stopped", highlight=False)


def register(app: typer.Typer) -> None:
    for command in (worker, wait):
        app.command()(command)
