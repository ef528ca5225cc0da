"""SIGINT and SIGTERM leave a rollout safe, and said.

Real ``guardrail`` processes on a real-clock plan, real signals: the rollout stops at a
safe point (a step is never half-recorded), records who and where, keeps its lock as a
halted rollout does, exits 3 and prints what runs where with the exact commands that
continue it. ``status`` tells it; a new rollout over it is refused with that story
unless ``--take-over``; ``resume`` continues it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from guardrail.state.locks import HOST
from guardrail.state.sqlite import SQLiteStore
from support.engine_plans import rollout, run, state, work, write_plan  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
SERVICE = "engine-test"
WAVES = [{"name": "canary", "regions": ["r3"], "bake": "6s"},
         {"name": "main", "regions": ["r1", "r2"], "parallel": True, "bake": "2s"}]


def _start(*args, user: str = "erin") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN")}
    env["USER"] = user
    return subprocess.Popen([sys.executable, "-m", "guardrail", *map(str, args)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(predicate, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _row(state: Path) -> dict | None:
    if not state.exists():
        return None
    with closing(SQLiteStore(state)) as store:
        rows = store.rollouts()
        return rows[0] if rows else None


@pytest.mark.slow
def test_sigint_mid_bake_halts_says_what_runs_where_and_resume_continues(work, state):
    plan = write_plan(work, "long", base="realtime.yaml", waves=WAVES)
    proc = _start("rollout", plan, "--state", state)
    try:
        row = _wait_for(lambda: (r := _row(state)) and r["state"] == "baking" and r, what="the canary to bake")
        time.sleep(1.0)  # a tick or two into the bake
    finally:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    rid = row["id"]
    assert proc.returncode == 3, out + err
    text = " ".join(out.split())
    assert f"interrupted by SIGINT (erin on {HOST}, pid {proc.pid}) while baking wave canary" in text
    assert "stopped safely: r3 runs 2.0 (the new version); r1, r2 run 1.0." in out
    assert f"continue: guardrail resume {rid} --state {state}" in text
    assert f"roll back: guardrail abort {rid} --state {state}" in text
    assert "Traceback" not in err

    with closing(SQLiteStore(state)) as store:
        [stop] = store.events(rid, "rollout.interrupted")
        assert (stop["signal"], stop["by"], stop["host"], stop["pid"]) == ("SIGINT", "erin", HOST, proc.pid)
        lock = store.lock(SERVICE)  # kept, as a halted rollout keeps it
        assert lock["rollout_id"] == rid and lock["pid"] == 0
        assert store.step(rid, "bake:canary")["status"] == "started"  # the bake resumes, never passes half-baked

    status = run("status", rid, "--state", state, "--json")
    driver = json.loads(status.stdout)["driver"]
    assert driver["condition"] == "interrupted" and driver["running"] is False
    assert "interrupted by SIGINT at " in driver["story"] and f"(erin on {HOST}, pid {proc.pid})" in driver["story"]
    shown = run("status", rid, "--state", state)
    assert "no process drives it" in " ".join(shown.output.split())

    over = run("rollout", write_plan(work, "next", waves=WAVES[:1]), "--state", state)
    assert over.exit_code == 5, over.output
    story = " ".join(over.stderr.split())
    assert f"held by rollout {rid}: halted (2.0), interrupted by SIGINT" in story and "--take-over" in story

    resumed = run("resume", rid, "--state", state, "--output", "json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["outcome"] == "promoted"


@pytest.mark.slow
def test_sigterm_during_a_deploy_lets_it_finish_records_it_once_and_stops(work, state, tmp_path):
    deploys, gate = tmp_path / "deploys.log", tmp_path / "gate"
    script = [sys.executable, "../scripts/slow_deploy.py"]
    plan = write_plan(work, "gated", base="realtime.yaml", deploy={"plugin": "command", "with": {
        "deploy": script + ["deploy", "{{region}}", "{{version}}"],
        "rollback": script + ["rollback", "{{region}}", "{{previous}}"],
        "env": {"DEPLOY_LOG": str(deploys), "DEPLOY_GATE": str(gate)}}})
    proc = _start("rollout", plan, "--state", state, "--output", "json")
    try:
        row = _wait_for(lambda: (r := _row(state)) and r["state"] == "deploying" and r, what="the deploy to start")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # to guardrail only: its deploy program runs on
        time.sleep(0.5)
        assert proc.poll() is None  # it waits for the deploy in progress: never half-recorded
    finally:
        gate.touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, out + err
    doc = json.loads(out)
    assert "interrupted by SIGTERM" in doc["reason"] and "while deploying wave canary" in doc["reason"]
    assert f"guardrail resume {row['id']} --state {state}" in " ".join(err.split())
    with closing(SQLiteStore(state)) as store:
        assert store.step(row["id"], "deploy:r3")["status"] == "done"  # the deploy it let finish, recorded
    assert [line.split()[:2] for line in deploys.read_text().splitlines()] == [["deploy", "r3"]]

    resumed = run("resume", row["id"], "--state", state, "--output", "json")
    assert resumed.exit_code == 0, resumed.output
    calls = [line.split()[:2] for line in deploys.read_text().splitlines()]
    assert calls[0] == ["deploy", "r3"] and sorted(calls[1:]) == [["deploy", "r1"], ["deploy", "r2"]]  # r3 once
