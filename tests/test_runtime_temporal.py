"""Rollouts on Temporal workers (guardrail/runtime/), against a real dev server and real
``guardrail worker`` processes sharing one state: a real PostgreSQL database, as workers
on several machines do (the worker death test also on one SQLite file, WAL, as workers
on one machine may; the scenario library and the cancelled workflow on SQLite files).

- the scenarios of examples/scenarios/ give the same answers through a worker as in
  this process: outcome, deciding check and region, and decision time on the virtual clock;
- a worker SIGKILLed in the middle of a bake is a non-event: the other worker takes the
  same rollout over within the heartbeat timeout plus an evaluation interval, the deploy
  tool's own log shows every side effect once, and the events say who ran it, when it
  moved, and the bake's coverage shows the time nobody watched, not counted as bake;
- the same plan submitted twice is one workflow: the second submission attaches;
- ``rollout --detach``, then ``pause``, ``resume``, ``approve``, ``abort`` from other
  processes, each recorded with the person's name and reason, and each workflow run
  with who asked for it;
- without the SDK, ``--temporal`` says which extra to install.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from guardrail.errors import OUTCOME_EXIT
from guardrail.report.evidence import coverage_by_region
from guardrail.state.open import open_store
from guardrail.state.sqlite import SQLiteStore
from guardrail.text import format_duration, iso
from support import scenario_library
from support.temporal_workers import REPO, environment, guardrail, plan_variant, workers

pytestmark = pytest.mark.temporal

HEARTBEAT = 2.0
"""The activity's heartbeat timeout in these tests (GUARDRAIL_TEMPORAL_HEARTBEAT)."""


def _queue(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _store(state: str | Path):
    """The workers' store, as another process (``status``, a person) opens it."""
    return open_store(state if isinstance(state, str) else state / "state.db")


def _wait_for(probe, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"{probe.__name__} did not hold within {timeout}s"
        time.sleep(interval)


def _deploy_log(workdir: Path) -> list[dict]:
    path = workdir / "deploy.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- conformance: the scenario library, locally and on a worker ---------------------------

lib = scenario_library.load()


def _answers(store: SQLiteStore, rollout_id: str) -> dict:
    row = store.rollout(rollout_id)
    failed = store.events(rollout_id, ("state.failed", "state.aborted"))
    return {"outcome": row["outcome"], "state": row["state"],
            "deciding": sorted((f["region"], f["check"]) for f in failed[0].get("findings", [])) if failed else [],
            "decided_at": failed[0]["at"] if failed else None}


@pytest.mark.slow
def test_every_scenario_gives_the_same_answers_on_a_temporal_worker_as_in_process(temporal_server, tmp_path):
    names = lib.names()
    local = {}
    for name in names:
        run = lib.run(name, workdir=tmp_path / "local" / name)
        store = SQLiteStore(run.state)
        try:
            local[name] = _answers(store, run.rollout_id)
        finally:
            store.close()
        assert local[name]["decided_at"] == run.decided_at

    # One worker per scenario: each keeps its own state file and simulated fleet log,
    # as the local runs do (the scenarios share a service, hence a lock and a fleet).
    def remote(name: str) -> tuple[str, dict, dict]:
        workdir = tmp_path / "temporal" / name
        env = environment(workdir, temporal_server)
        queue = _queue(f"scenario-{name}")
        with workers(env, [f"worker-{name}"], queue, workdir / "logs"):
            done = guardrail(env, "rollout", str(lib.HERE / name / "rollout.yaml"), "--task-queue", queue,
                             "--start-at", lib.REPLAY_AT[name], "--output", "json")
        assert done.stdout.startswith("{"), done.stdout + done.stderr
        summary = json.loads(done.stdout)
        store = _store(workdir)
        try:
            answers = _answers(store, summary["rollout_id"])
            attempts = store.events(summary["rollout_id"], "runner.attempt")
        finally:
            store.close()
        assert [a["worker"] for a in attempts] == [f"worker-{name}"]
        assert summary["exit_code"] == done.returncode == OUTCOME_EXIT[answers["outcome"]]
        return name, answers, summary

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(remote, names))
    for name, answers, summary in results:
        assert answers == local[name], name
        assert summary["outcome"] == local[name]["outcome"]
    # every kind of end the library has: a gap of every series halts, by design
    assert {answers["outcome"] for _, answers, _ in results} == {"promoted", "rolled_back", "rollback_failed",
                                                                  "halted"}


# -- a worker dies in the middle of a bake --------------------------------------------------


@pytest.mark.slow
def test_a_worker_killed_mid_bake_is_a_non_event(temporal_server, tmp_path, backend):
    """On PostgreSQL (workers on several machines) and on one SQLite file (one machine)."""
    env = environment(tmp_path, temporal_server, backend.spec, GUARDRAIL_TEMPORAL_HEARTBEAT=str(HEARTBEAT))
    plan = plan_variant(tmp_path)
    queue = _queue("failover")
    with workers(env, ["worker-a", "worker-b"], queue, tmp_path / "logs") as running:
        follower = subprocess.Popen([sys.executable, "-m", "guardrail", "rollout", str(plan), "--task-queue", queue],
                                    env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        store = backend.open()
        try:
            def baking_canary():
                rows = store.rollouts()
                if rows and len(store.measurements(rows[0]["id"], "bake:canary")) >= 3:
                    return rows[0]["id"]
                return None

            rollout_id = _wait_for(baking_canary)
            victim = store.events(rollout_id, "runner.attempt")[0]["worker"]
            survivor = next(name for name in running if name != victim)
            bake_start = store.step(rollout_id, "bake:canary")["detail"]["start"]
            running[victim].send_signal(signal.SIGKILL)
            killed_at = time.time()
            out, err = follower.communicate(timeout=120)
            assert follower.returncode == 0, out + err

            attempts = store.events(rollout_id, "runner.attempt")
            taken = store.events(rollout_id, "lock.taken_over")
            resumed = store.events(rollout_id, "rollout.resumed")
            bake = store.step(rollout_id, "bake:canary")
            _, coverage = coverage_by_region(store, rollout_id, store.events(rollout_id, "rollout.started")[0]["waves"],
                                             "bake:canary")
            row = store.rollout(rollout_id)
        finally:
            store.close()
    assert row["outcome"] == "promoted"
    # Who ran it and when it moved.
    assert [(a["worker"], a["attempt"]) for a in attempts] == [(victim, 1), (survivor, 2)]
    assert attempts[1]["previous"]["worker"] == victim and attempts[1]["run_id"] == attempts[0]["run_id"]
    moved_after = attempts[1]["at"] - killed_at
    print(f"\nkilled {victim} during the canary bake; {survivor} took rollout {rollout_id} over "
          f"{moved_after:.2f}s later (heartbeat timeout {HEARTBEAT}s, interval 1s)")
    interval = 1.0
    assert moved_after < HEARTBEAT + interval + 5.0, moved_after   # + retry backoff, process start-up slack
    assert resumed and resumed[0]["runner"] == f"{survivor} (attempt 2)"
    # The lock of this same rollout passed to the survivor, and says from whom.
    assert len(taken) == 1 and taken[0]["own"] and taken[0]["previous_rollout"] == rollout_id
    assert taken[0]["why"] == "process-gone" and taken[0]["pid"] == running[victim].pid
    # The unwatched time is not counted as bake: the bake's start moved by at least it.
    unwatched = attempts[1]["at"] - attempts[1]["unwatched_since"]
    assert unwatched >= HEARTBEAT - 0.5
    assert bake["detail"]["start"] - bake_start >= unwatched - 0.5
    # ... and the canary's coverage shows it: from the dead runner's last record to the takeover.
    [(since, until)] = bake["detail"]["unwatched"]
    assert since == attempts[1]["unwatched_since"] and 0 <= until - attempts[1]["at"] < 1.0
    [entry] = coverage["r3"]
    assert entry["unwatched"] == [[iso(since), iso(until)]] and entry["complete"]
    assert f"{format_duration(round(until - since))} unwatched at " in entry["text"]
    # Every side effect once: the deploy tool saw each region deployed once, no repeat.
    calls = _deploy_log(tmp_path)
    assert sorted((c["action"], c["region"]) for c in calls) == [("deploy", "r1"), ("deploy", "r2"), ("deploy", "r3")]
    assert not any(c["repeat"] for c in calls)
    # The follower printed the whole story, as a local run does, with the move.
    assert f"run by worker {survivor} (attempt 2" in out and f"after worker {victim} (attempt 1)" in out
    assert "promoted: every wave passed" in out
    _assert_visible(temporal_server, attempts[0]["workflow_id"], rollout_id, survivor)


def _assert_visible(server, workflow_id: str, rollout_id: str, last_worker: str) -> None:
    """What Temporal's UI and visibility queries show of a finished rollout."""
    from guardrail.runtime.workflow import KEYS

    async def check():
        client = await server.connect()
        handle = client.get_workflow_handle(workflow_id)
        described = await handle.describe()
        assert described.workflow_type == "rollout"
        assert await described.static_summary() == "rollout temporal-test 2.0"
        memo = await described.memo()
        assert (memo["rollout_id"], memo["service"], memo["version"], memo["outcome"]) == \
            (rollout_id, "temporal-test", "2.0", "promoted")
        attributes = described.typed_search_attributes
        assert [attributes.get(KEYS[name]) for name in ("GuardrailService", "GuardrailVersion", "GuardrailRollout",
                                                        "GuardrailWave", "GuardrailRegions", "GuardrailOutcome")] \
            == ["temporal-test", "2.0", rollout_id, "main", ["r1", "r2"], "promoted"]
        history = await handle.fetch_history()
        scheduled = [e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
        assert [e.activity_task_scheduled_event_attributes.activity_type.name for e in scheduled] == \
            ["guardrail.rollout"]
        assert await client.data_converter.decode([scheduled[0].user_metadata.summary]) == \
            ["run temporal-test 2.0: canary r3 (8s) → main r1, r2 (3s)"]
        started = [e.activity_task_started_event_attributes for e in history.events
                   if e.HasField("activity_task_started_event_attributes")]
        assert [(s.attempt, s.identity) for s in started] == [(2, last_worker)]  # the last attempt is recorded
        signals = [e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")]
        assert len(signals) >= 4  # progress: deploying, baking, deploying, baking, promoted

        async def listed():   # visibility is eventually consistent
            query = f'GuardrailService = "temporal-test" AND GuardrailOutcome = "promoted"'
            return [execution.id async for execution in client.list_workflows(query)]

        deadline = time.monotonic() + 20
        while workflow_id not in await listed():
            assert time.monotonic() < deadline, "not listed by its search attributes"
            await asyncio.sleep(0.2)

    asyncio.run(check())


# -- the same rollout submitted twice -------------------------------------------------------


@pytest.mark.slow
def test_the_same_plan_submitted_twice_is_one_workflow(temporal_server, tmp_path, postgres_url):
    env = environment(tmp_path, temporal_server, postgres_url)
    plan = plan_variant(tmp_path, {"service: temporal-test": "service: twice", "bake: 8s": "bake: 60s"})
    queue = _queue("twice")
    with workers(env, ["worker-a"], queue, tmp_path / "logs"):
        first = guardrail(env, "rollout", str(plan), "--task-queue", queue, "--detach")
        assert first.returncode == 0, first.stdout + first.stderr
        assert first.stderr == ""
        one = json.loads(first.stdout)
        assert one["workflow_id"].startswith("rollout-twice-2.0-") and one["attached"] is False
        # The second submission, while the first runs, follows the same rollout to its end.
        second = subprocess.Popen([sys.executable, "-m", "guardrail", "rollout", str(plan), "--task-queue", queue,
                                   "--output", "json"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        store = _store(postgres_url)
        try:
            def baking():
                rows = store.rollouts()
                return rows and rows[0]["state"] == "baking"

            _wait_for(baking)
            third = guardrail(env, "rollout", str(plan), "--task-queue", queue, "--detach")
            assert json.loads(third.stdout) | {"attached": None} == one | {"attached": None}
            assert json.loads(third.stdout)["attached"] is True

            async def runs():
                client = await temporal_server.connect()
                return [w.run_id async for w in client.list_workflows(f'WorkflowId = "{one["workflow_id"]}"')]

            assert len(asyncio.run(runs())) == 1
            # With GUARDRAIL_TEMPORAL set, abort reaches the workflow and follows it too.
            aborted = guardrail(env, "abort", one["rollout_id"], "--reason", "test over", "--by", "dave")
            assert aborted.returncode == 1, aborted.stdout + aborted.stderr
            assert f"attached to rollout {one['rollout_id']}" in aborted.stdout
            out, err = second.communicate(timeout=120)
            assert second.returncode == 1, out + err
            assert json.loads(out)["rollout_id"] == one["rollout_id"]
            assert [r["id"] for r in store.rollouts()] == [one["rollout_id"]]
            # The abort is recorded once, as dave's: the workflow run it attached to does not
            # record a resume of its own.
            assert [(e["action"], e["by"], e["reason"]) for e in store.events(one["rollout_id"], "person.acted")] \
                == [("abort", "dave", "test over")]
        finally:
            store.close()


# -- a person's controls, from other processes ----------------------------------------------


@pytest.mark.slow
def test_detach_then_pause_resume_approve_abort_from_other_processes(temporal_server, tmp_path, postgres_url):
    # Nobody's name in the environment: each name recorded is the one given with --by.
    env = {k: v for k, v in environment(tmp_path, temporal_server, postgres_url).items()
           if k not in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN")} | {"USER": "nobody-in-particular"}
    plan = plan_variant(tmp_path, {"service: temporal-test": "service: controls", "bake: 8s": "bake: 4s",
                                   "bake: 3s}": "bake: 60s, approval: manual}"})
    queue = _queue("controls")
    store = _store(postgres_url)
    with workers(env, ["worker-a", "worker-b"], queue, tmp_path / "logs"):
        try:
            detached = guardrail(env, "rollout", str(plan), "--task-queue", queue, "--detach", "--by", "erin")
            assert detached.returncode == 0, detached.stdout + detached.stderr
            rollout_id = json.loads(detached.stdout)["rollout_id"]

            def state(name):
                def probe():
                    rows = store.rollouts()
                    return bool(rows) and rows[0]["state"] == name
                probe.__name__ = f"state_is_{name}"
                return probe

            # pause and abort from processes that know only the state: requests the engine honours.
            plain = {k: v for k, v in env.items() if k != "GUARDRAIL_TEMPORAL"}
            _wait_for(state("baking"))
            paused = guardrail(plain, "pause", rollout_id, "--reason", "hold for the release call", "--by", "alice")
            assert paused.returncode == 0, paused.stdout + paused.stderr
            waited = guardrail(env, "wait", rollout_id, "--output", "json")
            assert waited.returncode == 3, waited.stdout + waited.stderr
            assert json.loads(waited.stdout)["reason"] == "paused: hold for the release call"

            # Resumed on the workers: the canary bake passes, the main wave waits for approval.
            resumed = guardrail(env, "resume", rollout_id, "--temporal", temporal_server.address, "--by", "bob",
                                "--reason", "release call done")
            assert resumed.returncode == 3, resumed.stdout + resumed.stderr
            assert "waits for approval" in resumed.stdout

            approver = subprocess.Popen([sys.executable, "-m", "guardrail", "approve", rollout_id, "--temporal",
                                         temporal_server.address, "--output", "json", "--by", "carol",
                                         "--reason", "CHG-1042 approved"], env=env, cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            _wait_for(lambda: len(store.events(rollout_id, "state.baking")) >= 3)  # canary, canary again, main
            aborted = guardrail(plain, "abort", rollout_id, "--reason", "call it off", "--by", "dave")
            assert aborted.returncode == 0 and "abort requested" in aborted.stdout, aborted.stdout + aborted.stderr
            out, err = approver.communicate(timeout=120)
            assert approver.returncode == 1, out + err
            assert json.loads(out)["reason"] == "aborted: call it off"

            attempts = store.events(rollout_id, "runner.attempt")
            halts = [e["reason"] for e in store.events(rollout_id, "state.halted")]
            requests = store.rollout(rollout_id)["requests"]
            acts = [(e["action"], e["by"], e["reason"]) for e in store.events(rollout_id, "person.acted")]
            status = guardrail(plain, "status", rollout_id, "--output", "json")
        finally:
            store.close()
    # Each act once, with the name and the reason its person gave, wherever it ran: no
    # worker records a resume of its own (it is not the one who asked).
    assert acts == [("pause", "alice", "hold for the release call"), ("resume", "bob", "release call done"),
                    ("approve", "carol", "CHG-1042 approved"), ("abort", "dave", "call it off")]
    assert status.returncode == 0, status.stdout + status.stderr
    assert [(p["action"], p["by"], p["reason"]) for p in json.loads(status.stdout)["people"]] == acts
    assert requests["approved"]["main"]["by"] == "carol"
    assert halts[0] == "paused: hold for the release call" and "waits for approval" in halts[1]
    assert requests["abort"] == "call it off" and "main" in requests["approved"]
    # Three workflow runs of one rollout: submitted, resumed, approved (a resume too), each
    # recorded with who asked for it.
    assert [(a["mode"], a["requested_by"]) for a in attempts] == [("start", "erin"), ("resume", "bob"),
                                                                  ("resume", "carol")]
    assert len({a["run_id"] for a in attempts}) == 3 and len({a["workflow_id"] for a in attempts}) == 1
    calls = _deploy_log(tmp_path)
    assert sorted((c["action"], c["region"]) for c in calls if c["action"] != "action") == [
        ("deploy", "r1"), ("deploy", "r2"), ("deploy", "r3"), ("rollback", "r1"), ("rollback", "r2"),
        ("rollback", "r3")]
    assert not any(c["repeat"] for c in calls)


def test_without_the_sdk_temporal_commands_name_the_extra_to_install(tmp_path):
    """The SDK is made unimportable in a child process; guardrail's own help still works."""
    from guardrail.version import DISTRIBUTION

    script = ("import sys; sys.modules['temporalio'] = None\n"
              "from guardrail.cli import main\n"
              "sys.argv = ['guardrail'] + sys.argv[1:]\n"
              "main()\n")

    def run(*args):
        return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=REPO,
                              env={**environment(tmp_path, type("S", (), {"address": "127.0.0.1:1",
                                                                          "namespace": "x"})())})

    worker = run("worker", "--task-queue", "q")
    assert worker.returncode == 2, worker.stdout + worker.stderr
    assert f"pip install '{DISTRIBUTION}[temporal]'" in worker.stderr and "Traceback" not in worker.stderr
    submitted = run("rollout", str(REPO / "examples" / "scenarios" / "r3-sender-restarts" / "rollout.yaml"))
    assert submitted.returncode == 2 and f"pip install '{DISTRIBUTION}[temporal]'" in submitted.stderr
    assert run("rollout", "--help").returncode == 0


@pytest.mark.slow
def test_a_cancelled_workflow_stops_its_rollout_and_abort_rolls_it_back_on_the_workers(temporal_server, tmp_path):
    env = environment(tmp_path, temporal_server)
    plan = plan_variant(tmp_path, {"service: temporal-test": "service: cancelled", "bake: 8s": "bake: 60s"})
    queue = _queue("cancel")
    store = _store(tmp_path)
    with workers(env, ["worker-a"], queue, tmp_path / "logs"):
        try:
            detached = guardrail(env, "rollout", str(plan), "--task-queue", queue, "--detach")
            submitted = json.loads(detached.stdout)
            rollout_id = submitted["rollout_id"]
            _wait_for(lambda: len(store.measurements(rollout_id, "bake:canary")) >= 2)

            async def cancel():
                client = await temporal_server.connect()
                await client.get_workflow_handle(submitted["workflow_id"]).cancel()

            asyncio.run(cancel())
            waited = guardrail(env, "wait", rollout_id)
            assert waited.returncode == 3, waited.stdout + waited.stderr
            # Stopped: no more evaluations, the lock kept for the rollout with no process.
            ticks = len(store.measurements(rollout_id, "bake:canary"))
            time.sleep(2.5)
            assert len(store.measurements(rollout_id, "bake:canary")) == ticks
            lock = store.lock("cancelled")
            assert (lock["rollout_id"], lock["pid"]) == (rollout_id, 0) and "cancelled" in lock["holder"]
            assert [e["worker"] for e in store.events(rollout_id, "runner.stopped")] == ["worker-a"]

            aborted = guardrail(env, "abort", rollout_id, "--temporal", temporal_server.address,
                                "--reason", "cancelled: roll it back")
            assert aborted.returncode == 1, aborted.stdout + aborted.stderr
            assert "ABORTED: aborted: cancelled: roll it back" in aborted.stdout
            assert store.lock("cancelled") is None
        finally:
            store.close()
    calls = _deploy_log(tmp_path)
    assert [(c["action"], c["region"]) for c in calls] == [("deploy", "r3"), ("rollback", "r3"), ("action", "r3")]


@pytest.mark.slow
def test_a_follower_on_another_state_than_the_workers_is_told_so(temporal_server, tmp_path):
    env = environment(tmp_path, temporal_server)
    plan = plan_variant(tmp_path, {"service: temporal-test": "service: elsewhere", "bake: 8s": "bake: 1s",
                                   "bake: 3s": "bake: 1s"})
    queue = _queue("elsewhere")
    with workers(env, ["worker-a"], queue, tmp_path / "logs"):
        done = guardrail(env, "rollout", str(plan), "--task-queue", queue, "--state", str(tmp_path / "other.db"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ended on the workers (promoted) but is not in" in done.stderr and "the workers' --state" in done.stderr
    assert "Traceback" not in done.stderr
