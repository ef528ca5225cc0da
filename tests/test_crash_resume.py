"""Kill a rollout with SIGKILL anywhere, resume it, and get the same result.

The plan (tests/data/killtest) runs every kind of step: three deploys (two in
parallel), a bake that passes, a late failure in the canary region during the next
wave's bake, three rollbacks, remediation actions, an incident and a recovery. It is
killed either at the N-th event (right after a state is committed, before its side
effect) or from inside a deploy/rollback/action script right after the work took
effect. Then `guardrail resume` finishes it. Each time:

- the final outcome equals that of an uninterrupted run, and
- the deploy tool's own log shows no region deployed, rolled back or acted on twice
  (a repeated call with the same idempotency key is allowed: the tool ignores it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from guardrail.state.sqlite import SQLiteStore
from guardrail.report.summary import summarize

REPO = Path(__file__).resolve().parent.parent
PLAN = REPO / "tests" / "data" / "killtest" / "rollout.yaml"

# Events of the uninterrupted run (see KILLPOINT_LOG), each the N-th of its kind: from the
# start, through the canary's deploy and bake, the main wave's parallel deploy and bake, the
# failure, the rollback of each region, the failure actions, the incident's updates, and
# recovery verification with its actions.
EVENT_KILLS = ["rollout.started#1", "region.deploying#1", "region.deployed#1", "state.baking#1", "bake.tick#25",
               "bake.passed#1", "state.deploying#2", "region.deploying#3", "state.baking#2", "bake.tick#72",
               "state.failed#1", "state.rolling_back#1", "region.rolled_back#2", "action.ran#1",
               "incident.monitoring#1", "state.verifying_recovery#1", "action.ran#5", "incident.resolved#1"]
# Kills from inside the side effect, after it took effect but before guardrail heard back.
EFFECT_KILLS = ["deploy:r3", "deploy:r2", "rollback:r1", "action:r3"]


def _env(workdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILLPOINT", "KILL_PARENT"))}
    # The plan runs tests/support/fleet_deploy.py through its `#!/usr/bin/env python3` line,
    # and it imports guardrail_plugins: the `python3` found first must be this interpreter
    # (scripts/test does not activate the virtual environment it installs guardrail in).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(
        KILLTEST_FLEET=str(workdir / "fleet.jsonl"),
        KILLTEST_LOG=str(workdir / "deploy.jsonl"),
        PYTHONPATH=os.pathsep.join([str(REPO / "tests" / "support"), env.get("PYTHONPATH", "")]),
        GUARDRAIL_PLUGINS="killpoint",
        GUARDRAIL_STATE=str(workdir / "state.db"),
        **extra,
    )
    return env


def _guardrail(workdir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guardrail", *args], env=_env(workdir, **extra), cwd=REPO,
                          capture_output=True, text=True, timeout=600)  # generous: a loaded machine is slow


def _rollout_id(workdir: Path) -> str:
    store = SQLiteStore(workdir / "state.db")
    try:
        rows = store.rollouts()
        assert len(rows) == 1, rows
        return rows[0]["id"]
    finally:
        store.close()


def _outcome(workdir: Path) -> dict:
    store = SQLiteStore(workdir / "state.db")
    try:
        status = summarize(store, _rollout_id(workdir))
    finally:
        store.close()
    return {
        "outcome": status["outcome"],
        "state": status["state"],
        "waves": [(w["name"], [(r["region"], r["deployed_at"] is not None, r["rolled_back_at"] is not None,
                                r["verdict"]) for r in w["regions"]]) for w in status["waves"]],
        "failing": sorted((f["region"], f["check"]) for f in status["failing_checks"]),
        "incident": status["incident"]["status"] if status["incident"] else None,
    }


def _effects(workdir: Path) -> list[tuple[str, str, str]]:
    """The deploy tool's log: every call that took effect (repeats of a key excluded)."""
    lines = [json.loads(line) for line in (workdir / "deploy.jsonl").read_text().splitlines()]
    return sorted((e["action"], e["region"], e["version"]) for e in lines if not e["repeat"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    done = _guardrail(workdir, "rollout", str(PLAN))
    assert done.returncode == 1, done.stdout + done.stderr
    return _outcome(workdir), _effects(workdir)


def _kill_and_resume(workdir: Path, **kill: str) -> tuple[dict, list, subprocess.CompletedProcess]:
    killed = _guardrail(workdir, "rollout", str(PLAN), **kill)
    assert killed.returncode == -signal.SIGKILL, f"not killed ({kill}): {killed.returncode}\n{killed.stdout}"
    resumed = _guardrail(workdir, "resume", _rollout_id(workdir))
    return _outcome(workdir), _effects(workdir), resumed


@pytest.mark.slow
def test_twenty_two_kill_points_resume_to_the_same_outcome(reference, tmp_path):
    expected_outcome, expected_effects = reference
    assert expected_outcome["outcome"] == "rolled_back" and expected_outcome["failing"] == [("r3", "sender-restarts")]
    assert len(expected_effects) == 12  # 3 deploys, 3 rollbacks, 3 pause + 3 resume actions
    kills = [{"KILLPOINT_AT": str(n)} for n in EVENT_KILLS] + [{"KILL_PARENT_ON": e} for e in EFFECT_KILLS]
    assert len(kills) >= 20

    def one(index_kill):
        index, kill = index_kill
        workdir = tmp_path / f"kill{index}"
        workdir.mkdir()
        return kill, _kill_and_resume(workdir, **kill)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, enumerate(kills)))
    for kill, (outcome, effects, resumed) in results:
        assert resumed.returncode == 1, f"{kill}: resume exited {resumed.returncode}\n{resumed.stdout}{resumed.stderr}"
        assert outcome == expected_outcome, kill
        assert effects == expected_effects, f"{kill}: the deploy tool saw {effects}"


@pytest.mark.slow
def test_a_killed_rollout_keeps_its_lock_until_resumed(tmp_path):
    """The dead process's lock is taken over by `resume`, not by a second rollout of it."""
    killed = _guardrail(tmp_path, "rollout", str(PLAN), KILLPOINT_AT="30")
    assert killed.returncode == -signal.SIGKILL
    history = json.loads(_guardrail(tmp_path, "history", "--json").stdout)["rollouts"]
    assert history[0]["state"] == "baking"
    resumed = _guardrail(tmp_path, "resume", history[0]["id"], "--output", "json")
    assert resumed.returncode == 1, resumed.stderr
    assert json.loads(resumed.stdout)["outcome"] == "rolled_back"
    again = _guardrail(tmp_path, "resume", history[0]["id"])  # finished: its result, with its exit code
    assert again.returncode == 1 and "finished earlier (done); nothing was run" in again.stdout, again.stderr


def _raw_calls(workdir: Path) -> list[str]:
    """Every call the deploy tool saw, repeats included."""
    return (workdir / "deploy.jsonl").read_text().splitlines()


@pytest.mark.slow
def test_a_rollout_superseded_after_kill_9_never_acts_again(tmp_path):
    """kill -9, a new rollout of the service takes over (a person says why), then the old
    one's resume, abort and approve all refuse, and the deploy tool sees no extra call."""
    killed = _guardrail(tmp_path, "rollout", str(PLAN), KILLPOINT_AT="state.baking#2")  # r1 and r2 deployed
    assert killed.returncode == -signal.SIGKILL
    old = _rollout_id(tmp_path)

    refused = _guardrail(tmp_path, "rollout", str(PLAN))
    assert refused.returncode == 5, refused.stdout + refused.stderr
    assert f"held by rollout {old}" in refused.stderr and "no process has driven it since" in refused.stderr

    new = _guardrail(tmp_path, "rollout", str(PLAN), "--output", "json", "--take-over", "runner lost; start over",
                     "--by", "frank")
    assert new.returncode == 1, new.stdout + new.stderr  # the plan's late failure, rolled back
    new_id = json.loads(new.stdout)["rollout_id"]
    calls = _raw_calls(tmp_path)

    for command in (["resume", old], ["abort", old], ["resume", old, "--output", "json"]):
        again = _guardrail(tmp_path, *command)
        assert again.returncode == 5, f"{command}: {again.returncode}\n{again.stdout}{again.stderr}"
        if "json" in command:
            assert json.loads(again.stdout)["rollout_id"] == new_id
        else:
            assert f"rollout {old} was superseded: rollout {new_id} took over the lock" in " ".join(again.stderr.split())
            assert "--take-over" in again.stderr
    assert _raw_calls(tmp_path) == calls  # nothing deployed, rolled back or acted on by the superseded rollout

    store = SQLiteStore(tmp_path / "state.db")
    try:
        [lost] = store.events(old, "lock.lost")
        assert lost["by_rollout"] == new_id and lost["reason"] == "runner lost; start over"
        [person] = store.events(new_id, "person.acted")
        assert (person["action"], person["by"], person["previous_rollout"]) == ("take-over", "frank", old)
        assert summarize(store, old)["driver"]["condition"] == "superseded"
    finally:
        store.close()
