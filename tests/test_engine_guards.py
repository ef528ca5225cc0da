"""What keeps a rollout from going wrong: missing evidence never promotes, preflight and
change freezes refuse to start, and one rollout per service at a time (locks held by
real subprocesses, left by dead ones, kept by halted rollouts).

Virtual-clock plans run in-process through ``CliRunner``; the lock tests run real
``guardrail`` subprocesses on a real-clock plan baking 2s per wave.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from guardrail.cli import create_app
from guardrail.report.event_text import describe
from guardrail.state.locks import HOST
from guardrail.state.sqlite import SQLiteStore
from guardrail_plugins.sim import FleetLog

REPO = Path(__file__).resolve().parent.parent
SERVICE = "engine-test"
MINUTE = 60.0


from support.engine_plans import DATA, rollout, run, state, states, work, write_plan, write_policy  # noqa: F401



def fleet(state: Path) -> list[tuple[str, str, str]]:
    log = FleetLog(state.parent / f"sim-fleet-{SERVICE}.jsonl")
    return [(r["action"], r["region"], r["version"]) for r in log.records if r.get("action") != "start"]


def canary_only(**changes) -> dict:
    return {"waves": [{"name": "canary", "regions": ["r3"], "bake": "30m"}], **changes}


# --- missing evidence never promotes --------------------------------------------------------


def test_a_metric_that_is_absent_halts_naming_the_check(work, state):
    doc = rollout(write_plan(work, "absent", policies=["../policies/absent.yaml"]), state, 3)
    assert doc["outcome"] == "halted" and doc["state"] == "halted" and not doc["finished"]
    assert doc["reason"].startswith("no evidence: ") and "r3/absent/missing-metric: no data" in doc["reason"]
    verdicts = [r["verdict"] for w in doc["waves"] for r in w["regions"]]
    assert verdicts == ["inconclusive", "not_deployed", "not_deployed"]
    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        assert states(store, rid) == ["deploying", "baking", "halted"]
        bake = store.measurements(rid, "bake:canary")
        assert [(m["tick"], m["status"], m["reason"]) for m in bake] == [(k, "inconclusive", "no data")
                                                                         for k in range(3)]
        assert bake[-1]["streak"] == 3  # the policy's inconclusive_limit
        assert not store.steps(rid, "rollback:")
        lock = store.lock(SERVICE)  # a halted rollout keeps its lock for a person
        assert lock["rollout_id"] == rid and lock["pid"] == 0 and "halted" in lock["holder"]
    assert fleet(state) == [("deploy", "r3", "2.0")]  # nothing more deployed, nothing rolled back


@pytest.mark.parametrize("name, policy_changes, reason", [
    ("no-data-fails", {"on_no_data": "fail"}, "no data (on_no_data: fail)"),
    ("check-no-data-fails", {"checks": [{"name": "heartbeat", "source": "prometheus", "fail_if": "< 0",
                                         "query": 'last_over_time(heartbeat{region="{{region}}"}[30s])',
                                         "on_no_data": "fail"}]}, "no data (on_no_data: fail)"),
    ("inconclusive-fails", {"on_inconclusive": "fail"}, "no evidence: r3/heartbeat/heartbeat: no data"),
])
def test_missing_data_fails_and_rolls_back_when_the_policy_says_so(work, state, name, policy_changes, reason):
    policy = write_policy(work, "heartbeat", name, **policy_changes)
    doc = rollout(write_plan(work, name, change={"version": "2.4-silent"}, policies=[policy]), state, 1)
    assert doc["outcome"] == "rolled_back" and reason in doc["reason"]
    [finding] = doc["failing_checks"]
    assert finding["region"] == "r3" and finding["check"] == "heartbeat" and finding["value"] is None
    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        assert states(store, rid) == ["deploying", "baking", "failed", "rolling_back", "rolled_back",
                                      "verifying_recovery", "done"]
        recovery = store.measurements(rid, "recovery")
        # The reading at the rollback's own instant still shows the silent version (as a
        # real scrape would); data is back at every later one.
        assert recovery[0]["reason"].startswith("no data") and recovery[0]["status"] != "pass"
        assert len(recovery) > 1 and {m["status"] for m in recovery[1:]} == {"pass"}
    assert fleet(state) == [("deploy", "r3", "2.4-silent"), ("rollback", "r3", "1.0")]


def test_a_version_that_silences_its_metrics_halts_by_default(work, state):
    doc = rollout(write_plan(work, "silent", change={"version": "2.4-silent"},
                             policies=["../policies/heartbeat.yaml"]), state, 3)
    assert "r3/heartbeat/heartbeat: no data" in doc["reason"]
    with closing(SQLiteStore(state)) as store:
        bake = store.measurements(doc["rollout_id"], "bake:canary")
        assert [m["status"] for m in bake][-3:] == ["inconclusive"] * 3 and bake[0]["status"] == "pass"


@pytest.mark.parametrize("on_no_data", ["inconclusive", "pass", "fail"])
def test_a_source_error_is_inconclusive_whatever_on_no_data_says(work, state, on_no_data):
    policy = write_policy(work, "unsupported", f"unsupported-{on_no_data}", on_no_data=on_no_data)
    doc = rollout(write_plan(work, f"unsupported-{on_no_data}", policies=[policy]), state, 3)
    assert "r3/unsupported/p95-from-histogram: sim: query" in doc["reason"]
    assert "histogram_quantile" in doc["reason"]
    with closing(SQLiteStore(state)) as store:
        bake = store.measurements(doc["rollout_id"], "bake:canary")
        assert {m["status"] for m in bake} == {"inconclusive"} and len(bake) == 3
        assert all(m["reason"].startswith("sim: query") for m in bake)


def test_a_scrape_gap_shorter_than_the_inconclusive_limit_does_not_halt(work, state):
    doc = rollout(write_plan(work, "flaky", change={"version": "2.8-flaky"},
                             policies=["../policies/heartbeat.yaml"]), state, 0)
    with closing(SQLiteStore(state)) as store:
        for phase in ("bake:canary", "bake:main"):
            rows = [m for m in store.measurements(doc["rollout_id"], phase)]
            gaps = [m for m in rows if m["status"] == "inconclusive"]
            assert gaps, f"the one-minute gap was not seen in {phase}"
            assert max(m["streak"] for m in rows) < 3
            assert rows[-1]["status"] == "pass"


def test_on_no_data_pass_is_honoured_and_recorded_but_never_covers_the_bake(work, state):
    """A pass on no data keeps the bake going, but it is not evidence: the bake runs its
    extension, then halts naming the check that covered nothing."""
    policy = write_policy(work, "absent", "absent-pass", on_no_data="pass")
    doc = rollout(write_plan(work, "absent-pass", policies=[policy], **canary_only()), state, 3)
    assert doc["reason"].startswith("bake not covered by fresh evidence: r3/absent/missing-metric: 0s of 30m covered; 1h without fresh evidence at ")
    with closing(SQLiteStore(state)) as store:
        bake = store.measurements(doc["rollout_id"], "bake:canary")
        assert {(m["status"], m["reason"]) for m in bake} == {("pass", "no data (on_no_data: pass)")}
        [covered] = store.coverage(doc["rollout_id"], "bake:canary")
        assert covered["covered"] == 0 and covered["uncovered"] > 0


def test_on_no_data_fail_for_a_metric_that_never_existed_cannot_verify_recovery(work, state):
    """The rollback happens, but the same missing metric keeps failing on the rolled-back
    region: recovery is never achieved, so a person is called (exit 4), not exit 1."""
    policy = write_policy(work, "absent", "absent-fail", on_no_data="fail")
    doc = rollout(write_plan(work, "absent-fail", policies=[policy], **canary_only()), state, 4)
    assert "recovery not achieved" in doc["reason"]
    assert fleet(state) == [("deploy", "r3", "2.0"), ("rollback", "r3", "1.0")]


# --- refusing to start ----------------------------------------------------------------------


def test_preflight_refuses_while_the_policies_already_fail(work, state):
    plan = write_plan(work, "preflight", preflight=True,
                      policies=["../policies/errors.yaml", "../policies/backlog.yaml"])
    doc = rollout(plan, state, 3)
    assert doc["outcome"] == "halted" and doc["state"] == "refused" and doc["finished"]
    assert doc["reason"].startswith("preflight: policies already fail before any deploy")
    for region in ("r3", "r1", "r2"):
        assert f"{region}/backlog/legacy-backlog: 500 (fails if > 100)" in doc["reason"]
    assert "errors" not in doc["reason"].replace("already fail", "")
    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        assert states(store, rid) == ["refused"]
        [preflight] = store.events(rid, "preflight")
        assert len(preflight["failing"]) == 3
        assert store.steps(rid) == [] and store.lock(SERVICE) is None
    assert fleet(state) == []


def test_preflight_passes_healthy_policies_and_skips_relative_checks(work, state):
    plan = write_plan(work, "preflight-ok", preflight=True,
                      policies=["../policies/errors.yaml", "../policies/error-log.yaml"], **canary_only())
    doc = rollout(plan, state, 0)
    with closing(SQLiteStore(state)) as store:
        assert store.events(doc["rollout_id"], "preflight")[0]["failing"] == []
        assert states(store, doc["rollout_id"]) == ["deploying", "baking", "promoted"]


def test_a_change_freeze_refuses_unless_overridden_with_a_reason(work, state):
    plan = write_plan(work, "frozen", windows={"deny": ["2000-01-01-2199-12-31"]}, **canary_only())
    refused = rollout(plan, state, 3)
    assert refused["state"] == "refused" and "change freeze '2000-01-01-2199-12-31'" in refused["reason"]
    assert "--override-window" in refused["reason"]
    with closing(SQLiteStore(state)) as store:
        assert states(store, refused["rollout_id"]) == ["refused"] and store.steps(refused["rollout_id"]) == []
        assert store.lock(SERVICE) is None  # a refusal leaves nothing to clean up
    assert fleet(state) == []

    done = rollout(plan, state, 0, "--override-window", "hotfix for INC-42, approved by the CAB", "--by", "carol")
    with closing(SQLiteStore(state)) as store:
        events = [e["kind"] for e in store.events(done["rollout_id"])]
        assert events[:4] == ["rollout.started", "window.overridden", "person.acted", "state.deploying"]
        [overridden] = store.events(done["rollout_id"], "window.overridden")
        assert overridden["reason"] == "hotfix for INC-42, approved by the CAB"
        assert overridden["window"] == "2000-01-01-2199-12-31" and overridden["by"] == "carol"
    [person] = done["people"]  # on the record
    assert (person["action"], person["by"], person["reason"]) == ("override-window", "carol",
                                                                  "hotfix for INC-42, approved by the CAB")
    assert fleet(state) == [("deploy", "r3", "2.0")]


# --- locks ------------------------------------------------------------------------------------


def _guardrail(*args: str | Path, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "guardrail", *map(str, args)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}, **kw)


def _wait_for(predicate, timeout: float = 120.0, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; the deadline is generous because it only
    matters when the test fails, and a loaded machine is slow."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _gated(work: Path, name: str, deploys: Path, gate: Path, **changes) -> Path:
    """A real-clock plan whose deploys (``slow_deploy.py``) wait until ``gate`` exists."""
    script = [sys.executable, "../scripts/slow_deploy.py"]
    return write_plan(work, name, base="realtime.yaml", deploy={"plugin": "command", "with": {
        "deploy": script + ["deploy", "{{region}}", "{{version}}"],
        "rollback": script + ["rollback", "{{region}}", "{{previous}}"],
        "env": {"DEPLOY_LOG": str(deploys), "DEPLOY_GATE": str(gate)}}}, **changes)


@pytest.mark.slow
def test_two_rollouts_of_the_same_service_at_once_exactly_one_proceeds(work, state, tmp_path):
    """Both start at once. The winner's first deploy waits at a gate until the other process
    has exited, so the loser meets a held lock however the two are scheduled (a winner that
    finished before the loser even started would let it in, and prove nothing)."""
    gate = tmp_path / "gate"
    plan = _gated(work, "gated", tmp_path / "deploys.log", gate)
    procs = [_guardrail("rollout", plan, "--state", state, "--output", "json") for _ in range(2)]
    try:
        _wait_for(lambda: any(p.poll() is not None for p in procs), what="one of the two rollouts to be refused")
    finally:
        gate.touch()
        outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 5], outs
    winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
    won, lost = json.loads(outs[winner][0]), json.loads(outs[loser][0])
    assert won["outcome"] == "promoted"
    assert lost | {"message": "-"} == {"command": "rollout", "outcome": "locked", "service": SERVICE,
                                       "holder": f"{HOST}:{procs[winner].pid}", "rollout_id": won["rollout_id"],
                                       "exit_code": 5, "problems": [], "message": "-"}
    with closing(SQLiteStore(state)) as store:
        assert [r["id"] for r in store.rollouts()] == [won["rollout_id"]]  # the loser stored nothing
        assert store.lock(SERVICE) is None


def _hold(store: SQLiteStore, *, pid: int, host: str = HOST, lease: float = 120.0, rollout_id: str = "ghost") -> None:
    assert store.try_lock(SERVICE, rollout_id, f"{host}:{pid}", host, pid, lease, lambda row: True) is None


def test_a_lock_held_by_a_live_process_refuses_and_is_taken_over_once_it_died(work, state):
    plan = write_plan(work, "quick", **canary_only())
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with closing(SQLiteStore(state)) as store:
            _hold(store, pid=holder.pid)
        result = run("rollout", plan, "--state", state)
        assert result.exit_code == 5, result.output
        assert f"locked by rollout ghost ({HOST}:{holder.pid})" in result.stderr
        assert "guardrail unlock engine-test" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    doc = rollout(plan, state, 0)  # the holder is gone from this host: taken over at once
    with closing(SQLiteStore(state)) as store:
        assert [r["id"] for r in store.rollouts()] == [doc["rollout_id"]]
        assert store.lock(SERVICE) is None


def test_a_lock_from_another_host_is_taken_over_only_after_its_lease_expired(work, state):
    plan = write_plan(work, "quick", **canary_only())
    with closing(SQLiteStore(state)) as store:
        _hold(store, pid=4242, host="another-runner")
    locked = run("rollout", plan, "--state", state, "--output", "json")
    assert locked.exit_code == 5, locked.output
    assert json.loads(locked.stdout)["holder"] == "another-runner:4242"
    with closing(SQLiteStore(state)) as store:
        _hold(store, pid=4242, host="another-runner", lease=-1.0)  # it stopped renewing
        expired_at = store.lock(SERVICE)["expires_at"]
    doc = rollout(plan, state, 0)
    with closing(SQLiteStore(state)) as store:
        [taken] = store.events(doc["rollout_id"], "lock.taken_over")
        assert taken["why"] == "lease-expired" and taken["lease_expires_at"] == expired_at
        assert (taken["previous_rollout"], taken["previous_holder"]) == ("ghost", "another-runner:4242")
        assert taken["pid_running"] is None  # another host's pids cannot be checked from here
        assert describe(taken).endswith(f"its lease expired at {_iso(expired_at)}")
        assert store.events("ghost") == []  # no rollout of that id here: nothing to tell


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _kill_while_deploying(work: Path, state: Path, tmp_path: Path) -> tuple[str, int]:
    """Start ``guardrail rollout`` as a real process, SIGKILL it while its first deploy
    waits at a gate (so it surely holds the lock); return its rollout id and pid."""
    gate = tmp_path / "gate"
    proc = _guardrail("rollout", _gated(work, "gated", tmp_path / "deploys.log", gate), "--state", state)
    try:
        _wait_for(lambda: state.exists() and _deploy_started(state), what="the deploy to start")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        gate.touch()  # the orphaned deploy program ends too
    assert proc.returncode == -signal.SIGKILL
    with closing(SQLiteStore(state)) as store:
        return store.rollouts()[0]["id"], proc.pid


@pytest.mark.slow
def test_the_lock_of_a_killed_rollout_is_taken_over_at_once_and_both_rollouts_say_so(work, state, tmp_path):
    killed, pid = _kill_while_deploying(work, state, tmp_path)
    with closing(SQLiteStore(state)) as store:
        left = store.lock(SERVICE)
        assert (left["rollout_id"], left["pid"], left["expires_at"] > time.time()) == (killed, pid, True)
        last = store.last_time(killed)

    report = tmp_path / "report.html"
    nextplan = write_plan(work, "next", **canary_only())
    dead = json.loads(run("status", killed, "--state", state, "--json").stdout)["driver"]
    assert (dead["condition"], dead["pid"], dead["host"], dead["why"]) == ("dead", pid, HOST, "process-gone")
    assert dead["story"].startswith("no process has driven it since ") and f"(pid {pid} on host {HOST}, gone)" in dead["story"]
    refused = run("rollout", nextplan, "--state", state)  # its regions may be half-way: a person decides
    assert refused.exit_code == 5, refused.output
    story = " ".join(refused.stderr.split())
    assert f"held by rollout {killed}: deploying (2.0), no process has driven it since" in story
    assert f"(pid {pid} on host {HOST}, gone)" in story and "--take-over" in story
    assert f"guardrail resume {killed}" in story and f"guardrail abort {killed}" in story
    result = run("rollout", nextplan, "--state", state, "--report", report, "--take-over", "r3 checked by hand",
                 "--by", "dave")
    assert result.exit_code == 0, result.output  # at once: the lease had not expired
    sentence = (f"took over the lock of {SERVICE} from rollout {killed} ({HOST}:{pid}, held since "
                f"{_iso(left['acquired_at'])}): its process {pid} is gone from {HOST}")
    assert sentence in result.output  # the progress lines
    with closing(SQLiteStore(state)) as store:
        new = store.rollouts()[0]["id"]
        [taken] = store.events(new, "lock.taken_over")
        assert taken == {"seq": taken["seq"], "at": taken["at"], "kind": "lock.taken_over", "service": SERVICE,
                         "previous_rollout": killed, "previous_holder": f"{HOST}:{pid}", "own": False,
                         "why": "process-gone", "host": HOST, "pid": pid, "pid_running": False,
                         "held_since": left["acquired_at"], "lease_expires_at": left["expires_at"],
                         "taken_at": taken["taken_at"], "reason": "r3 checked by hand"}
        [person] = store.events(new, "person.acted")
        assert (person["action"], person["by"], person["reason"], person["previous_rollout"]) == (
            "take-over", "dave", "r3 checked by hand", killed)
        assert left["acquired_at"] < taken["taken_at"] < left["expires_at"]
        assert [e["kind"] for e in store.events(new)][:2] == ["rollout.started", "lock.taken_over"]

        [lost] = store.events(killed, "lock.lost")
        assert (lost["by_rollout"], lost["by_holder"], lost["why"]) == (new, f"{HOST}:{os.getpid()}", "process-gone")
        assert lost["at"] == last == store.last_time(killed)  # dated on its own clock: a resume of it is not moved
        assert describe(lost) == (f"lock of {SERVICE} taken over at {_iso(taken['taken_at'])} by rollout {new} "
                                  f"({HOST}:{os.getpid()}): this rollout's process {pid} is gone from {HOST}")
        assert store.lock(SERVICE) is None
    assert sentence in report.read_text()  # the report's event log
    status = run("status", new, "--state", state)
    assert status.exit_code == 0 and sentence in " ".join(status.output.split()), status.output
    old = run("status", killed, "--state", state, "--json")
    assert json.loads(old.output)["notices"] == [describe(lost)]


def test_an_expired_lease_whose_pid_still_runs_here_is_taken_over_saying_so(work, state):
    """The pid answers on this host, but the lease was not renewed: a hung holder, or a
    pid that another process reuses. Only the lease's expiry lets the lock go."""
    plan = write_plan(work, "quick", **canary_only())
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with closing(SQLiteStore(state)) as store:
            _hold(store, pid=other.pid)
        assert run("rollout", plan, "--state", state).exit_code == 5  # alive and within its lease
        with closing(SQLiteStore(state)) as store:
            _hold(store, pid=other.pid, lease=-1.0)
            expired_at = store.lock(SERVICE)["expires_at"]
        doc = rollout(plan, state, 0)
        assert other.poll() is None  # taking a lock never touches its holder
    finally:
        other.kill()
        other.wait()
    with closing(SQLiteStore(state)) as store:
        [taken] = store.events(doc["rollout_id"], "lock.taken_over")
        assert (taken["why"], taken["pid"], taken["pid_running"]) == ("lease-expired", other.pid, True)
        assert describe(taken).endswith(f"its lease expired at {_iso(expired_at)} while pid {other.pid} still runs "
                                        f"on {HOST} (a hung process, or the pid reused)")


def test_a_lock_taken_without_a_holder_to_replace_records_nothing(work, state):
    doc = rollout(write_plan(work, "quick", **canary_only()), state, 0)
    with closing(SQLiteStore(state)) as store:
        assert not [e for e in store.events(doc["rollout_id"]) if e["kind"].startswith("lock.")]


def test_a_halted_rollout_keeps_its_lock_until_unlocked(work, state):
    halted = rollout(write_plan(work, "absent", policies=["../policies/absent.yaml"]), state, 3)
    plan = write_plan(work, "quick", **canary_only())
    locked = run("rollout", plan, "--state", state, "--output", "json")
    assert locked.exit_code == 5, locked.output
    doc = json.loads(locked.stdout)
    assert doc["rollout_id"] == halted["rollout_id"] and doc["holder"] == f"halted rollout {halted['rollout_id']}"

    freed = run("unlock", SERVICE, "--state", state)
    assert freed.exit_code == 0, freed.output
    assert f"unlocked {SERVICE}" in freed.output and halted["rollout_id"] in freed.output
    again = run("unlock", SERVICE, "--state", state)
    assert again.exit_code == 0 and "was not locked" in again.output
    rollout(plan, state, 0)


@pytest.mark.slow
def test_a_rollout_killed_with_sigkill_leaves_a_lock_that_resume_takes_over(work, state, tmp_path):
    deploys = tmp_path / "deploys.log"
    plan = write_plan(work, "killed", base="realtime.yaml", deploy={"plugin": "command", "with": {
        "deploy": [sys.executable, "../scripts/slow_deploy.py", "deploy", "{{region}}", "{{version}}"],
        "rollback": [sys.executable, "../scripts/slow_deploy.py", "rollback", "{{region}}", "{{previous}}"],
        "env": {"DEPLOY_LOG": str(deploys)}}})
    proc = _guardrail("rollout", plan, "--state", state)
    try:
        def baking():
            if not state.exists():
                return None
            with closing(SQLiteStore(state)) as store:
                rows = store.rollouts()
                return rows[0]["id"] if rows and rows[0]["state"] == "baking" else None

        rollout_id = _wait_for(baking, what="the rollout to bake")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    with closing(SQLiteStore(state)) as store:
        lock = store.lock(SERVICE)
        assert lock["rollout_id"] == rollout_id and lock["pid"] == proc.pid  # left behind by the dead process
        assert store.rollout(rollout_id)["state"] == "baking"

    result = run("resume", rollout_id, "--state", state, "--output", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outcome"] == "promoted"
    lines = deploys.read_text().split("\n")[:-1]
    assert sorted(line.split()[1] for line in lines) == ["r1", "r2", "r3"]  # each region deployed once
    with closing(SQLiteStore(state)) as store:
        assert store.events(rollout_id, "rollout.resumed")[0]["previous_state"] == "baking"
        [taken] = store.events(rollout_id, "lock.taken_over")  # from its own dead process
        assert (taken["own"], taken["previous_rollout"], taken["pid"], taken["why"]) == (
            True, rollout_id, proc.pid, "process-gone")
        assert describe(taken).startswith(f"took over this rollout's lock from its earlier process ({HOST}:{proc.pid},")
        assert store.events(rollout_id, "lock.lost") == []
        assert store.lock(SERVICE) is None


@pytest.mark.slow
def test_the_lease_is_renewed_while_a_deploy_outlasts_it(work, state, tmp_path):
    """A deploy held at a gate for more than two leases of 3 s: the heartbeat keeps the
    lock, and a second rollout, started only then, is refused. The deploy goes on until
    the second rollout has exited, however long that takes on a loaded machine."""
    gate = tmp_path / "gate"
    canary = [{"name": "canary", "regions": ["r3"], "bake": "1s"}]
    plan = _gated(work, "slow", tmp_path / "deploys", gate, waves=canary)
    other = write_plan(work, "other", base="realtime.yaml", waves=canary)  # the same service, not gated
    env = {**os.environ, "GUARDRAIL_LOCK_LEASE": "3"}
    first = subprocess.Popen([sys.executable, "-m", "guardrail", "rollout", str(plan), "--state", str(state),
                              "--output", "json"], cwd=REPO, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: state.exists() and _deploy_started(state), what="the deploy to start")
        time.sleep(7)  # the lease (3 s) would long have expired without the heartbeat
        second = subprocess.run([sys.executable, "-m", "guardrail", "rollout", str(other), "--state", str(state),
                                 "--output", "json"], cwd=REPO, env=env, text=True, capture_output=True, timeout=300)
        assert second.returncode == 5, second.stdout + second.stderr
        assert json.loads(second.stdout)["outcome"] == "locked"
    finally:
        gate.touch()
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert (tmp_path / "deploys").read_text().count("deploy r3") == 1


def _deploy_started(state: Path) -> bool:
    with closing(SQLiteStore(state)) as store:
        rows = store.rollouts()
        return bool(rows) and store.step(rows[0]["id"], "deploy:r3") is not None


def test_approving_a_wave_that_does_not_wait_is_refused(work, state):
    plan = write_plan(work, "manual", waves=[{"name": "canary", "regions": ["r3"], "bake": "30m"},
                                             {"name": "main", "regions": ["r1", "r2"], "bake": "30m",
                                              "approval": "manual"}])
    halted = rollout(plan, state, 3)
    wrong = run("approve", halted["rollout_id"], "--state", state, "--wave", "canary")
    assert wrong.exit_code == 2 and "does not wait for approval" in wrong.output
    approved = run("approve", halted["rollout_id"], "--state", state, "--output", "json")
    assert approved.exit_code == 0, approved.output
