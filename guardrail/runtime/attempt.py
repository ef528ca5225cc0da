"""One attempt at running a submitted rollout, on whichever worker got it.

The procedure is ``guardrail.api``'s, the same as a local run: a first attempt is
``Guardrail.rollout`` under the id the submitter chose; any later attempt (the worker
of the previous one died, or stopped heartbeating) is ``Guardrail.resume`` with
``takeover_by``: the lock of *this* rollout passes to the new runner, recorded as
``lock.taken_over`` (why: ``runner-replaced``), and the engine skips every step the
store says is done, so no deploy, rollback, action or notification happens twice. On
the real clock the time between the last thing the dead runner recorded and the
takeover is not counted as bake: the bake's start moves by that gap, as for any resume.

Each attempt records a ``runner.attempt`` event first: which worker, which attempt,
which workflow run, and the attempt before it. A halted or finished rollout is never
continued by a retry: only a person's ``resume`` (a new workflow run in ``resume``
mode) continues a halted one.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from guardrail import hookimpl
from guardrail.api import Guardrail, RolloutResult, plan_digest
from guardrail.errors import NotFound, StateError
from guardrail.runtime.jobs import RESUME, START, AttemptResult, RolloutJob

ATTEMPT_EVENT = "runner.attempt"


@dataclass(frozen=True)
class Runner:
    """Who runs this attempt: the worker, and where Temporal says the attempt belongs."""

    worker: str
    attempt: int
    workflow_id: str
    run_id: str
    namespace: str = ""
    task_queue: str = ""

    def facts(self) -> dict[str, Any]:
        return {"worker": self.worker, "attempt": self.attempt, "workflow_id": self.workflow_id,
                "run_id": self.run_id, "namespace": self.namespace, "task_queue": self.task_queue}


class _RecordAttempt:
    """Records the attempt right after the rollout's first event of this run
    (``rollout.started`` or ``rollout.resumed``), at its time: recorded earlier, it would
    count as the rollout's latest activity, and hide the gap of a takeover."""

    def __init__(self, store: Any, rollout_id: str, kind: str, facts: dict[str, Any]):
        self.store, self.rollout_id, self.kind, self.facts = store, rollout_id, kind, facts

    @hookimpl
    def guardrail_on_event(self, event: dict) -> None:
        if event.get("kind") == self.kind and event.get("rollout_id") == self.rollout_id:
            self.kind = None  # once
            self.store.add_event(self.rollout_id, event["at"], ATTEMPT_EVENT, self.facts)


def run_attempt(api: Guardrail, job: RolloutJob, runner: Runner) -> AttemptResult:
    """Run (or continue) ``job``'s rollout in this process until it finishes or halts."""
    plan = api.load(job.plan)
    if plan_digest(plan) != job.plan_digest:
        raise StateError(f"worker {runner.worker} reads a different plan or policies at {job.plan} than the ones "
                         f"submitted for rollout {job.rollout_id}: every worker must see the same files")
    row = _row(api, job.rollout_id)
    facts = {**runner.facts(), "mode": job.mode, "requested_by": job.requested_by}
    if row is None:
        if job.mode == RESUME:
            raise StateError(f"no rollout {job.rollout_id} in {api.state_path} to resume")
        with _recording(api, _RecordAttempt(api.store, job.rollout_id, "rollout.started", {**facts, "previous": None})):
            result = api.rollout(job.plan, override_window=job.override_window, clock_start=job.clock_start,
                                 rollout_id=job.rollout_id, by=job.requested_by or None, take_over=job.take_over)
        return _result(result, runner)
    attempts = api.store.events(job.rollout_id, ATTEMPT_EVENT)
    earlier = [e for e in attempts if e.get("run_id") == runner.run_id and e.get("attempt", 0) < runner.attempt]
    asked = job.mode == RESUME and not earlier
    """A person's resume that no attempt of this run has acted on yet."""
    finished = row["finished_at"] and not (asked and row["state"] == "rollback_failed")
    if finished or (row["state"] == "halted" and not asked):
        return _result(api.result(job.rollout_id), runner)
    # On the real clock nobody watched from the last thing recorded until this takeover:
    # Guardrail.resume does not count that gap as bake.
    last = api.store.last_time(job.rollout_id) if row["clock"] != "virtual" and not asked else None
    recorder = _RecordAttempt(api.store, job.rollout_id, "rollout.resumed", {
        **facts, "previous": _previous(attempts[-1]) if attempts else None, "unwatched_since": last})
    with _recording(api, recorder):
        if asked:
            # The person's act was recorded by the command that asked, where it was typed.
            # A take-over or a window override it carries is recorded in that person's name.
            result = api.resume(job.rollout_id, allow_changed_plan=job.allow_changed_plan, record=False,
                                by=job.requested_by or None, take_over=job.take_over,
                                override_window=job.override_window)
        else:
            result = api.resume(job.rollout_id, takeover_by=f"{runner.worker} (attempt {runner.attempt})")
    return _result(result, runner)


@contextmanager
def _recording(api: Guardrail, recorder: _RecordAttempt) -> Iterator[None]:
    api.pm.register(recorder)
    try:
        yield
    finally:
        api.pm.unregister(recorder)


def _row(api: Guardrail, rollout_id: str) -> dict[str, Any] | None:
    try:
        row = api.store.rollout(rollout_id)
    except NotFound:
        return None
    return row if row["id"] == rollout_id else None  # ``rollout`` also matches a prefix


def _previous(event: dict[str, Any]) -> dict[str, Any]:
    return {"worker": event.get("worker"), "attempt": event.get("attempt"), "run_id": event.get("run_id"),
            "at": event["at"]}


def _result(result: RolloutResult, runner: Runner) -> AttemptResult:
    return AttemptResult(result.rollout_id, result.outcome, result.state, result.reason, runner.worker,
                         runner.attempt)


__all__ = ["ATTEMPT_EVENT", "Runner", "run_attempt", "START", "RESUME"]
