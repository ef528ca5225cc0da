"""One attempt at a submitted rollout (guardrail/runtime/attempt.py), as a worker runs it,
without Temporal: what a first attempt and a retried one do with the shared store.

The plan is tests/data/incidents' (virtual clock, the canary fails at ~5m and is rolled
back): each run takes about a second.
"""

from __future__ import annotations

from contextlib import closing

import pytest

from guardrail import hookimpl
from guardrail.api import Guardrail, plan_digest
from guardrail.errors import LockedError, LockLostError, StateError
from guardrail.plugin.manager import get_plugin_manager
from guardrail.runtime.attempt import ATTEMPT_EVENT, Runner, run_attempt
from guardrail.runtime.jobs import RESUME, RolloutJob, workflow_id
from guardrail.state.sqlite import SQLiteStore
from support.fakes.rollouts import write_plan

SERVICE = "mail-sender"


def _job(api: Guardrail, plan, rollout_id: str = "20230105-171000-aaaaaa", **kw) -> RolloutJob:
    loaded = api.load(plan)
    return RolloutJob(rollout_id=rollout_id, service=SERVICE, version="2.1-bad", plan=str(plan),
                      plan_digest=plan_digest(loaded), clock_start=1672938600.0, **kw)


def _runner(worker: str, attempt: int, run_id: str = "run-1") -> Runner:
    return Runner(worker, attempt, workflow_id(SERVICE, "2.1-bad", "0" * 12), run_id, "default", "guardrail")


class _ElsewhereOnBake:
    """When the canary starts baking, the lock of this same rollout turns out held by a
    runner on another host with a live lease: what a worker sees of a zombie attempt, or
    what the next attempt sees of a runner Temporal gave up on."""

    def __init__(self, state):
        self.state = state

    @hookimpl
    def guardrail_on_event(self, event):
        if event["kind"] == "state.baking":
            with closing(SQLiteStore(self.state)) as store:
                store.try_lock(SERVICE, event["rollout_id"], "elsewhere:4242", "elsewhere", 4242, 600,
                               lambda row: True)


def test_a_first_attempt_is_a_rollout_under_the_submitted_id_and_records_its_runner(tmp_path):
    plan = write_plan(tmp_path)
    with closing(Guardrail(tmp_path / "state.db")) as api:
        result = run_attempt(api, _job(api, plan), _runner("worker-a", 1))
        events = api.store.events(result.rollout_id)
    assert (result.rollout_id, result.outcome, result.worker, result.attempt) == \
        ("20230105-171000-aaaaaa", "rolled_back", "worker-a", 1)
    kinds = [e["kind"] for e in events]
    assert kinds[:2] == ["rollout.started", ATTEMPT_EVENT]
    attempt = events[1]
    assert attempt["worker"] == "worker-a" and attempt["previous"] is None and attempt["at"] == events[0]["at"]


def test_a_worker_that_reads_other_files_refuses_the_job(tmp_path):
    plan = write_plan(tmp_path)
    with closing(Guardrail(tmp_path / "state.db")) as api:
        job = _job(api, plan)
        job.plan_digest = "f" * 64
        with pytest.raises(StateError, match="every worker must see the same files"):
            run_attempt(api, job, _runner("worker-a", 1))
        assert api.store.rollouts() == []


def test_a_retried_attempt_takes_over_the_same_rollout_from_a_runner_elsewhere(tmp_path):
    plan = write_plan(tmp_path)
    state = tmp_path / "state.db"
    with closing(Guardrail(state, pm=get_plugin_manager(extra_plugins=[_ElsewhereOnBake(state)]))) as first:
        with pytest.raises(LockLostError):  # the first attempt stops before its next change
            run_attempt(first, _job(first, plan), _runner("worker-a", 1))
    with closing(Guardrail(state)) as api:
        # A person's plain resume would refuse: the lease of that runner is still live.
        with pytest.raises(LockedError):
            api.resume("20230105-171000-aaaaaa")
        result = run_attempt(api, _job(api, plan), _runner("worker-b", 2))
        taken = api.store.events(result.rollout_id, "lock.taken_over")
        attempts = api.store.events(result.rollout_id, ATTEMPT_EVENT)
        resumed = api.store.events(result.rollout_id, "rollout.resumed")
        rollouts = api.store.rollouts()
        lock = api.store.lock(SERVICE)
    assert result.outcome == "rolled_back" and [r["id"] for r in rollouts] == [result.rollout_id]
    assert [(a["worker"], a["attempt"]) for a in attempts] == [("worker-a", 1), ("worker-b", 2)]
    assert attempts[1]["previous"]["worker"] == "worker-a"
    assert attempts[1]["unwatched_since"] is None  # virtual clock: simulated time continues, nothing unwatched
    assert resumed[0]["runner"] == "worker-b (attempt 2)"
    assert len(taken) == 1
    assert (taken[0]["own"], taken[0]["why"], taken[0]["previous_holder"], taken[0]["host"]) == \
        (True, "runner-replaced", "elsewhere:4242", "elsewhere")
    assert lock is None  # released at the end, as a local run does


def test_a_retry_never_continues_a_halted_rollout_but_a_persons_resume_does(tmp_path):
    plan = write_plan(tmp_path, waves=[{"name": "canary", "regions": ["r3"], "bake": "30m", "approval": "manual"}])
    with closing(Guardrail(tmp_path / "state.db")) as api:
        halted = run_attempt(api, _job(api, plan), _runner("worker-a", 1))
        assert (halted.outcome, halted.state) == ("halted", "halted")
        # The worker died after the halt, before Temporal heard of it: the retry reports it.
        retried = run_attempt(api, _job(api, plan), _runner("worker-b", 2))
        assert (retried.outcome, retried.state) == ("halted", "halted")
        assert len(api.store.events(halted.rollout_id, "rollout.resumed")) == 0
        api.approve(halted.rollout_id, "canary", resume=False, by="alice")
        # A person's resume is a new workflow run: its first attempt continues the rollout ...
        resumed = run_attempt(api, _job(api, plan, mode=RESUME), _runner("worker-b", 1, run_id="run-2"))
        assert resumed.outcome == "rolled_back"
        # ... and a retry of that run finds it finished.
        again = run_attempt(api, _job(api, plan, mode=RESUME), _runner("worker-a", 2, run_id="run-2"))
        assert again.outcome == "rolled_back"
        modes = [(a["mode"], a["run_id"]) for a in api.store.events(halted.rollout_id, ATTEMPT_EVENT)]
        acts = [(e["action"], e["by"]) for e in api.store.events(halted.rollout_id, "person.acted")]
    assert modes == [("start", "run-1"), ("resume", "run-2")]
    # The person's approval is on the record; the worker that carried it out adds no act.
    assert acts == [("approve", "alice")]


def test_a_take_over_travels_with_the_job_and_is_recorded_in_the_submitters_name(tmp_path):
    """`rollout --temporal --take-over "reason" --by NAME`: the worker starts the new rollout
    over the halted one holding the service, and records the take-over as that person's."""
    plan = write_plan(tmp_path, waves=[{"name": "canary", "regions": ["r3"], "bake": "30m", "approval": "manual"}])
    with closing(Guardrail(tmp_path / "state.db")) as api:
        halted = run_attempt(api, _job(api, plan), _runner("worker-a", 1))
        assert halted.state == "halted"
        second = "20230105-171500-bbbbbb"
        with pytest.raises(LockedError):  # without it, the halted rollout keeps the service
            run_attempt(api, _job(api, plan, rollout_id=second, requested_by="erin"), _runner("worker-a", 1, "run-2"))
        taken = run_attempt(api, _job(api, plan, rollout_id=second, requested_by="erin", take_over="ship the fix"),
                            _runner("worker-b", 1, "run-3"))
        acts = [(e["action"], e["by"], e["reason"]) for e in api.store.events(second, "person.acted")]
        attempts = [(a["worker"], a["requested_by"]) for a in api.store.events(second, ATTEMPT_EVENT)]
    assert taken.rollout_id == second and taken.state == "halted"  # its own canary waits for approval
    assert acts == [("take-over", "erin", "ship the fix")]
    assert attempts == [("worker-b", "erin")]
