"""The release engineer's commands: ``rollout`` (the quickstart, JSON output, usage
errors), ``status``, ``history``, ``abort``, ``pause``/``resume``, ``approve`` and the
refusals of ``resume``; all through ``CliRunner`` on ``create_app()``, checked against
the state file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from guardrail.cli import create_app
from guardrail.state.sqlite import SQLiteStore
from guardrail_plugins.sim import FleetLog

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart"
SERVICE = "engine-test"


from support.engine_plans import DATA, rollout, run, state, states, work, write_plan, write_policy  # noqa: F401



def fleet(state: Path, service: str = SERVICE) -> list[tuple[str, str, str]]:
    log = FleetLog(state.parent / f"sim-fleet-{service}.jsonl")
    return [(r["action"], r["region"], r["version"]) for r in log.records if r.get("action") != "start"]


MANUAL_MAIN = {"waves": [{"name": "canary", "regions": ["r3"], "bake": "30m"},
                         {"name": "main", "regions": ["r1", "r2"], "parallel": True, "bake": "1h",
                          "approval": "manual"}]}


# --- the quickstart -----------------------------------------------------------------------


def test_a_start_time_replays_the_same_simulated_rollout(tmp_path):
    start = "2026-01-05T10:00:00Z"  # a Monday morning, well outside the quickstart's freeze
    docs = []
    for i in range(2):  # a minute apart in wall time would be a different simulated run without it
        result = run("rollout", QUICKSTART / "rollout.yaml", "--state", tmp_path / f"s{i}.db", "--output", "json",
                     "--start-at", start)
        assert result.exit_code == 1, result.output
        docs.append(json.loads(result.stdout))
    first, again = ([{k: f[k] for k in ("value", "first_breach_at", "reason")} for f in d["failing_checks"]]
                    for d in docs)
    assert first == again and first[0]["first_breach_at"] > 1767607200.0  # 2026-01-05T10:00:00Z
    assert [w["regions"] for w in docs[0]["waves"]] == [w["regions"] for w in docs[1]["waves"]]
    assert docs[0]["waves"][0]["regions"][0]["deployed_at"].startswith("2026-01-05T10:")


def test_a_start_time_is_refused_when_it_cannot_apply(state):
    bad = run("rollout", QUICKSTART / "rollout.yaml", "--state", state, "--start-at", "next monday")
    assert bad.exit_code == 2 and "--start-at 'next monday': expected an ISO time" in bad.output, bad.output
    real = run("rollout", DATA / "plans" / "realtime.yaml", "--state", state, "--start-at", "2026-01-05T10:00:00Z")
    assert real.exit_code == 2 and "runs on the real clock" in real.output, real.output
    if state.exists():
        with closing(SQLiteStore(state)) as store:
            assert store.rollouts() == []  # nothing started


def test_the_failing_quickstart_rolls_back_r3_and_never_touches_r1_r2(state):
    result = run("rollout", QUICKSTART / "rollout.yaml", "--state", state, "--output", "json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    # README "--output json": the documented fields.
    assert {"rollout_id", "service", "version", "previous", "outcome", "state", "reason", "exit_code", "waves",
            "failing_checks", "incident"} <= set(doc)
    assert (doc["service"], doc["version"], doc["previous"]) == ("mail-sender", "2023.01.05", "2022.12.14")
    assert (doc["outcome"], doc["state"], doc["exit_code"]) == ("rolled_back", "done", 1)
    assert [w["name"] for w in doc["waves"]] == ["canary", "main"]
    regions = {r["region"]: r for w in doc["waves"] for r in w["regions"]}
    assert set(regions["r3"]) == {"region", "deployed_at", "rolled_back_at", "verdict", "coverage"}
    assert regions["r3"]["verdict"] == "fail" and regions["r3"]["deployed_at"].endswith("Z")
    assert regions["r3"]["rolled_back_at"].endswith("Z")
    for region in ("r1", "r2"):
        assert regions[region] == {"region": region, "deployed_at": None, "rolled_back_at": None,
                                   "verdict": "not_deployed", "coverage": []}
    [finding] = doc["failing_checks"]
    assert finding["region"] == "r3" and finding["check"] == "service-restarts"
    assert finding["query"] == 'sum(increase(service_restarts_total{region="r3"}[15m]))'
    assert finding["value"] > 1.5 and finding["threshold"] == 1.5 and finding["comparison"] == "> 1.5"
    assert isinstance(finding["first_breach_at"], float) and finding["reason"]
    incident = doc["incident"]
    assert incident["id"] == f"INC-{doc['rollout_id']}" and incident["status"] == "resolved"
    assert incident["rolled_back"] == ["r3"] and [a["region"] for a in incident["actions"]] == ["r3", "r3"]

    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        assert [s["key"] for s in store.steps(rid, "deploy:")] == ["deploy:r3"]
        assert {m["region"] for m in store.measurements(rid)} == {"r3"}
        assert store.incident(rid)["status"] == "resolved"
    assert fleet(state, "mail-sender") == [("deploy", "r3", "2023.01.05"), ("rollback", "r3", "2022.12.14")]

    journal = [json.loads(line) for line in (state.parent / "incidents.jsonl").read_text().splitlines()]
    assert {i["id"] for i in journal} == {incident["id"]}
    statuses = [i["status"] for i in journal]  # one line per update of the one incident
    assert statuses[-1] == "resolved" and statuses.index("monitoring") < statuses.index("resolved")
    assert journal[-1]["failing_checks"][0]["check"] == "service-restarts"


def test_the_healthy_quickstart_is_promoted_and_says_so(state):
    result = run("rollout", QUICKSTART / "rollout-healthy.yaml", "--state", state)
    assert result.exit_code == 0, result.output
    for text in ("wave canary: deploying r3", "wave main: deploying r1, r2", "promoted: every wave passed"):
        assert text in result.output
    doc = json.loads(run("status", "--state", state, "--json").stdout)
    assert doc["outcome"] == "promoted" and doc["incident"] is None and doc["failing_checks"] == []
    assert [r["verdict"] for w in doc["waves"] for r in w["regions"]] == ["pass", "pass", "pass"]
    assert not (state.parent / "incidents.jsonl").exists()


# --- usage errors: exit 2, nothing deployed --------------------------------------------------


def test_an_invalid_plan_exits_2_and_deploys_nothing(work, state):
    plan = write_plan(work, "invalid", waves=[{"name": "canary", "regions": ["r9"], "bake": "soon"}])
    result = run("rollout", plan, "--state", state)
    assert result.exit_code == 2, result.output
    assert "invalid.yaml:" in result.stderr and "r9" in result.stderr and "nothing was changed" in result.stderr
    missing = run("rollout", work / "plans" / "missing.yaml", "--state", state)
    assert missing.exit_code == 2, missing.output
    bad_option = run("rollout", work / "plans" / "base.yaml", "--state", state, "--output", "yaml")
    assert bad_option.exit_code == 2, bad_option.output
    with closing(SQLiteStore(state)) as store:
        assert store.rollouts() == []
    assert not (state.parent / f"sim-fleet-{SERVICE}.jsonl").exists()


# --- status and history ---------------------------------------------------------------------


def test_status_and_history_read_the_state_file(work, state):
    bad = rollout(write_plan(work, "bad", change={"version": "2.1-bad"}), state, 1)
    other = rollout(write_plan(work, "other", service="other-service", change={"version": "2.1-bad"}), state, 1)

    latest = run("status", "--state", state)
    assert latest.exit_code == 0, latest.output
    assert other["rollout_id"] in latest.output and "rolled back" in latest.output
    by_id = run("status", bad["rollout_id"], "--state", state, "--json")
    assert by_id.exit_code == 0, by_id.output
    # The same document, but for the command that wrote it and its exit status.
    assert json.loads(by_id.stdout) == bad | {"command": "status", "exit_code": 0}
    # A unique prefix is enough. Both ids start with the same second when the two runs
    # share it, and their random parts may share leading characters too: take the shortest
    # prefix, from all but the last two characters on, that the other id does not start with.
    short = next(bad["rollout_id"][:n] for n in range(len(bad["rollout_id"]) - 2, len(bad["rollout_id"]) + 1)
                 if not other["rollout_id"].startswith(bad["rollout_id"][:n]))
    prefix = run("status", short, "--state", state, "--json")
    assert json.loads(prefix.stdout)["rollout_id"] == bad["rollout_id"]
    text = run("status", bad["rollout_id"], "--state", state).output
    assert "✗ r3 errors: 0.9 (fails if > 0.5)" in text and f"INC-{bad['rollout_id']}: resolved" in text

    history = run("history", "--state", state, "--json")
    assert history.exit_code == 0, history.output
    doc = json.loads(history.stdout)
    assert (doc["command"], doc["outcome"], doc["exit_code"]) == ("history", "listed", 0)
    rows = doc["rollouts"]
    assert [r["rollout_id"] for r in rows] == [other["rollout_id"], bad["rollout_id"]]  # newest first
    assert set(rows[0]) == {"rollout_id", "id", "service", "version", "previous", "state", "outcome", "reason",
                            "clock", "started_at"}
    assert rows[1] | {"reason": None} == {"rollout_id": bad["rollout_id"], "id": bad["rollout_id"],
                                          "service": SERVICE, "version": "2.1-bad", "previous": "1.0",
                                          "state": "done", "outcome": "rolled_back", "reason": None,
                                          "clock": "virtual", "started_at": bad["started_at"]}
    only = json.loads(run("history", "--state", state, "--service", SERVICE, "--output", "json").stdout)
    assert [r["rollout_id"] for r in only["rollouts"]] == [bad["rollout_id"]]
    table = run("history", "--state", state)
    assert bad["rollout_id"] in table.output and "other-service" in table.output

    via_env = run("history", "--json", env={"GUARDRAIL_STATE": str(state)})  # every command honours it
    assert via_env.exit_code == 0 and len(json.loads(via_env.stdout)["rollouts"]) == 2
    assert run("status", "--json", env={"GUARDRAIL_STATE": str(state)}).exit_code == 0

    unknown = run("status", "no-such-id", "--state", state)
    assert unknown.exit_code == 2 and "no rollout 'no-such-id'" in unknown.stderr
    # A mistyped state path is said as such, and no empty state file is left behind.
    missing = state.parent / "mistyped.db"
    for command in (["status"], ["history"], ["pause", "x"], ["abort", "x"], ["unlock", "svc"],
                    ["incidents", "list"]):
        result = run(*command, "--state", missing)
        assert result.exit_code == 2 and f"no state file at {missing}" in result.stderr, (command, result.output)
    assert not missing.exists()
    SQLiteStore(state.parent / "empty.db").close()
    empty = run("status", "--state", state.parent / "empty.db")
    assert empty.exit_code == 2 and "no rollouts in" in empty.stderr


# --- approval, abort, resume -----------------------------------------------------------------


def test_a_manual_wave_halts_until_approved_then_continues(work, state):
    halted = rollout(write_plan(work, "manual", **MANUAL_MAIN), state, 3)
    rid = halted["rollout_id"]
    assert halted["state"] == "halted" and f"guardrail approve {rid}" in halted["reason"]
    assert fleet(state) == [("deploy", "r3", "2.0")]  # main waits: r1/r2 untouched
    with closing(SQLiteStore(state)) as store:
        assert store.events(rid, "state.halted")[0]["waiting_for"] == "main"
        assert set(store.baselines(rid)) == set() and store.lock(SERVICE)["pid"] == 0

    approved = run("approve", rid, "--state", state, "--output", "json")
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout)["outcome"] == "promoted"
    with closing(SQLiteStore(state)) as store:
        assert states(store, rid) == ["deploying", "baking", "halted", "deploying", "baking", "promoted"]
        assert "main" in store.rollout(rid)["requests"]["approved"]
        assert store.events(rid, "rollout.resumed")[0]["previous_state"] == "halted"
        assert store.lock(SERVICE) is None
    assert sorted(fleet(state)) == [("deploy", "r1", "2.0"), ("deploy", "r2", "2.0"), ("deploy", "r3", "2.0")]


def test_approve_refuses_a_rollout_that_waits_for_nothing(work, state):
    halted = rollout(write_plan(work, "absent", policies=["../policies/absent.yaml"]), state, 3)
    result = run("approve", halted["rollout_id"], "--state", state)
    assert result.exit_code == 2, result.output
    assert "not waiting for an approval" in result.stderr


def test_abort_rolls_back_a_halted_rollout(work, state):
    halted = rollout(write_plan(work, "manual", **MANUAL_MAIN), state, 3)
    rid = halted["rollout_id"]
    result = run("abort", rid, "--state", state, "--reason", "the canary smells", "--output", "json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["outcome"] == "rolled_back" and doc["reason"] == "aborted: the canary smells"
    assert doc["incident"]["aborted"] is True and doc["incident"]["status"] == "resolved"
    with closing(SQLiteStore(state)) as store:
        assert states(store, rid) == ["deploying", "baking", "halted", "aborted", "rolling_back", "rolled_back",
                                      "verifying_recovery", "done"]
        assert store.lock(SERVICE) is None
    assert fleet(state) == [("deploy", "r3", "2.0"), ("rollback", "r3", "1.0")]
    again = run("abort", rid, "--state", state)
    assert again.exit_code == 2 and "nothing to abort" in again.stderr


def test_resume_of_a_finished_rollout_reports_its_result_and_runs_nothing(work, state):
    done = rollout(write_plan(work, "good", waves=MANUAL_MAIN["waves"][:1]), state, 0)
    with closing(SQLiteStore(state)) as store:
        before = store.events(done["rollout_id"])
    result = run("resume", done["rollout_id"], "--state", state)
    assert result.exit_code == 0, result.output  # the finished outcome's own exit code
    assert f"rollout {done['rollout_id']} finished earlier (promoted); nothing was run" in result.output
    assert "promoted" in result.output
    as_json = run("resume", done["rollout_id"], "--state", state, "--output", "json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["outcome"] == "promoted"
    with closing(SQLiteStore(state)) as store:
        assert store.events(done["rollout_id"]) == before


@pytest.mark.parametrize("edit", ["plan", "policy"])
def test_resume_refuses_when_the_plan_or_a_policy_changed(work, state, edit):
    plan = write_plan(work, "manual", **MANUAL_MAIN)
    halted = rollout(plan, state, 3)
    changed = plan if edit == "plan" else work / "policies" / "errors.yaml"
    original = changed.read_text()
    changed.write_text(original.replace('"> 0.5"', '"> 0.9"') if edit == "policy" else original + "# edited\n")
    result = run("resume", halted["rollout_id"], "--state", state)
    assert result.exit_code == 2, result.output
    assert "changed since rollout" in result.stderr and f"guardrail abort {halted['rollout_id']}" in result.stderr
    changed.write_text(original)  # restored: resuming is allowed again (and halts again at the approval)
    assert run("resume", halted["rollout_id"], "--state", state).exit_code == 3


def test_resume_retries_a_failed_rollback(work, state):
    plan = write_plan(work, "rollback-fails", change={"version": "2.1-bad"},
                      deploy={"with": {"fail_rollback_regions": ["r3"]}})
    failed = rollout(plan, state, 4)
    result = run("resume", failed["rollout_id"], "--state", state, "--output", "json")
    assert result.exit_code == 4, result.output
    with closing(SQLiteStore(state)) as store:
        step = store.step(failed["rollout_id"], "rollback:r3")
        assert step["status"] == "failed" and step["attempts"] == 2
        assert store.step(failed["rollout_id"], "deploy:r3")["attempts"] == 1


# --- pause and resume of a running (real-clock) rollout ---------------------------------------


def _running_rollout(plan: Path, state: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "guardrail", "rollout", str(plan), "--state", str(state),
                             "--output", "json"], cwd=REPO, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.monotonic() + 120  # generous: it returns as soon as the rollout bakes
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists():
            with closing(SQLiteStore(state)) as store:
                rows = store.rollouts()
                if rows and rows[0]["state"] == "baking":
                    return proc, rows[0]["id"]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the rollout never started baking: {proc.communicate()}")


def _finish(proc: subprocess.Popen) -> tuple[str, str]:
    """The output of a rollout that should end by itself now; killed if it does not."""
    try:
        return proc.communicate(timeout=300)
    finally:
        _kill(proc)


def _kill(proc: subprocess.Popen) -> None:
    """Leave no rollout process behind a failed test."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.mark.slow
def test_pause_halts_a_running_rollout_at_its_next_tick_and_resume_finishes_it(work, state):
    # The pause must land while the canary bakes: 6s leave room for a loaded machine.
    plan = write_plan(work, "paused", base="realtime.yaml",
                      waves=[{"name": "canary", "regions": ["r3"], "bake": "6s"},
                             {"name": "main", "regions": ["r1", "r2"], "parallel": True, "bake": "1s"}])
    proc, rid = _running_rollout(plan, state)
    try:
        requested = time.time()
        paused = run("pause", rid, "--state", state, "--reason", "lunch")
        acknowledged = time.time()
        assert paused.exit_code == 0, paused.output
        assert f"guardrail resume {rid}" in paused.output
    except BaseException:
        _kill(proc)
        raise
    out, err = _finish(proc)
    assert proc.returncode == 3, (out, err)
    doc = json.loads(out)
    assert doc["outcome"] == "halted" and doc["reason"] == "paused: lunch"
    assert [r["deployed_at"] is not None for w in doc["waves"] for r in w["regions"]] == [True, False, False]
    with closing(SQLiteStore(state)) as store:
        assert store.lock(SERVICE)["pid"] == 0
        halted_at = store.events(rid, "state.halted")[0]["at"]
        assert halted_at >= requested
        # At its next tick: a tick is due at `at` and checks for a pause before it measures,
        # so every tick measured had checked before the pause was stored. (Ordering, not
        # elapsed time: a loaded machine runs the ticks late, never in this order.)
        assert all(m["at"] <= acknowledged for m in store.measurements(rid, "bake:canary"))
        bake_started = store.step(rid, "bake:canary")["started_at"]

    paused_for = 1.5
    time.sleep(paused_for)  # a pause must not count as bake time
    resumed = run("resume", rid, "--state", state, "--output", "json")
    assert resumed.exit_code == 0, resumed.output  # the same outcome as an uninterrupted run
    with closing(SQLiteStore(state)) as store:
        canary = [m for m in store.measurements(rid, "bake:canary") if m["region"] == "r3"]
        assert max(m["tick"] for m in canary) >= 6  # the whole bake (6 ticks of 1s) was measured...
        moved = store.step(rid, "bake:canary")["detail"]["start"]
        assert moved - bake_started >= paused_for  # ...and its start moved by the pause (at least), durably
    assert json.loads(resumed.stdout)["outcome"] == "promoted"
    with closing(SQLiteStore(state)) as store:
        seq = states(store, rid)
        assert seq[:3] == ["deploying", "baking", "halted"] and seq[-1] == "promoted"
        assert store.step(rid, "deploy:r3")["attempts"] == 1
        assert store.rollout(rid)["requests"].get("pause") is None
        assert store.lock(SERVICE) is None


@pytest.mark.slow
def test_abort_of_a_running_rollout_is_honoured_by_that_process_at_its_next_tick(work, state):
    # A canary bake far longer than the test: the abort lands while it bakes, however
    # slowly this machine got the process there, and ends it at the next tick.
    plan = write_plan(work, "aborted", base="realtime.yaml",
                      waves=[{"name": "canary", "regions": ["r3"], "bake": "10m"},
                             {"name": "main", "regions": ["r1", "r2"], "parallel": True, "bake": "1s"}])
    proc, rid = _running_rollout(plan, state)
    try:
        result = run("abort", rid, "--state", state, "--reason", "wrong build", "--output", "json")
        acknowledged = time.time()
        assert result.exit_code == 0, result.output
        requested = json.loads(result.stdout)  # the running process does the rollback and reports it
        assert requested["rollout_id"] == rid and requested["outcome"] == "abort_requested"
    except BaseException:
        _kill(proc)
        raise
    out, err = _finish(proc)
    assert proc.returncode == 1, (out, err)
    doc = json.loads(out)
    assert doc["outcome"] == "rolled_back" and doc["reason"] == "aborted: wrong build"
    assert [r["region"] for w in doc["waves"] for r in w["regions"] if r["rolled_back_at"]] == ["r3"]
    with closing(SQLiteStore(state)) as store:
        assert states(store, rid) == ["deploying", "baking", "aborted", "rolling_back", "rolled_back",
                                      "verifying_recovery", "done"]
        assert store.step(rid, "rollback:r3")["attempts"] == 1 and store.lock(SERVICE) is None
        # at its next tick: no tick was measured after the abort was stored
        assert all(m["at"] <= acknowledged for m in store.measurements(rid, "bake:canary"))


def test_a_relative_state_path_keeps_the_journal_next_to_the_state_file(tmp_path, monkeypatch):
    """`--state .guardrail/q.db` (as scripts/quickstart runs it) is relative to the current
    directory, and so is everything kept beside it: the fleet log and incidents.jsonl,
    never the plan's folder."""
    monkeypatch.chdir(tmp_path)
    result = run("rollout", QUICKSTART / "rollout.yaml", "--state", ".guardrail/q.db")
    assert result.exit_code == 1, result.output
    assert sorted(p.name for p in (tmp_path / ".guardrail").iterdir() if not p.name.startswith("q.db")) == [
        "incidents.jsonl", "sim-fleet-mail-sender.jsonl"]
    journal = [json.loads(line) for line in (tmp_path / ".guardrail" / "incidents.jsonl").open()]
    assert journal[-1]["status"] == "resolved"
    ours = {i["id"] for i in journal}
    for elsewhere in QUICKSTART.rglob("incidents.jsonl"):  # nothing of this rollout beside the plan
        assert not ours & {json.loads(line)["id"] for line in elsewhere.open()}


def test_a_region_name_with_escapes_and_a_newline_prints_as_text(tmp_path):
    """Region names are the plan's keys: whatever they hold, the progress lines, the summary
    table and ``status`` show them escaped on their own line, never a forged line or colour."""
    from support.fakes.rollouts import run_cli, write_plan

    region = "r3\x1b[31m\n00:00:00 fake: promoted"
    plan = write_plan(tmp_path / "w", regions={region: {}, "r1": {}, "r2": {}},
                      waves=[{"name": "canary", "regions": [region], "bake": "30m"},
                             {"name": "main", "regions": ["r1", "r2"], "parallel": True, "bake": "1h"}])
    state = tmp_path / "s" / "state.db"
    done = run_cli("rollout", str(plan), "--state", str(state))
    status = run_cli("status", "--state", str(state))
    for output in (done.stdout + done.stderr, status.stdout + status.stderr):
        assert "r3\\x1b[31m\\n00:00:00 fake: promoted" in output
        assert "\x1b" not in output
        assert not [line for line in output.splitlines() if line.startswith("00:00:00 fake")], output
