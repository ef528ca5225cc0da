"""A bug is never reported as a rollback.

- Inside the engine, an unexpected error after a failure was decided still runs the
  rollback (the decision is committed; the rollback is a step), then the rollout halts
  with the error recorded; ``resume`` finishes it. It never exits 1 ("rolled back")
  without a completed rollback.
- In the CLI, anything uncaught exits 70 with one line naming a log file that holds the
  traceback; the terminal shows no traceback.

The engine's bug is injected by ``tests/support/crashpoint.py`` in a real ``guardrail``
subprocess; the overflowing duration of the attack that found this runs in-process with
the value set past validation (validation refuses it in a plan file).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from guardrail.api import Guardrail
from guardrail.state.sqlite import SQLiteStore
from guardrail_plugins.sim import FleetLog
from support.engine_plans import state, work, write_plan  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
SERVICE = "engine-test"


def _guardrail(*args, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "support"),
                                                            os.environ.get("PYTHONPATH", "")]),
               "GUARDRAIL_PLUGINS": "crashpoint", **env}
    return subprocess.run([sys.executable, "-m", "guardrail", *map(str, args)], env=environ, cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def fleet(state: Path) -> list[tuple[str, str, str]]:
    log = FleetLog(state.parent / f"sim-fleet-{SERVICE}.jsonl")
    return [(r["action"], r["region"], r["version"]) for r in log.records if r.get("action") != "start"]


def test_a_bug_after_the_failure_decision_still_rolls_back_then_halts_and_resume_finishes(work, state):
    plan = write_plan(work, "bad", change={"version": "2.1-bad"})
    crashed = _guardrail("rollout", plan, "--state", state, "--output", "json", CRASHPOINT_AT="state.failed#1")
    assert crashed.returncode == 3, crashed.stdout + crashed.stderr  # halted: never 1 without recovery
    assert "Traceback" not in crashed.stderr
    doc = json.loads(crashed.stdout)
    rid = doc["rollout_id"]
    assert doc["state"] == "halted" and doc["outcome"] == "halted"
    assert doc["reason"].startswith("internal error: InjectedFault: injected fault before the transition to "
                                    "rolling_back (at crashpoint.py:")
    assert "after the failure was decided; rolled back r3 but recovery was not verified" in doc["reason"]
    assert [f["check"] for f in doc["failing_checks"]] == ["errors"]  # the decision stands
    assert fleet(state) == [("deploy", "r3", "2.1-bad"), ("rollback", "r3", "1.0")]  # rolled back at once
    with closing(SQLiteStore(state)) as store:
        [error] = store.events(rid, "rollout.error")
        assert error["error"].startswith("InjectedFault") and error["where"].startswith("crashpoint.py:")
        assert store.step(rid, "rollback:r3")["status"] == "done"
        lock = store.lock(SERVICE)  # kept for a person, as a halted rollout keeps it
        assert lock["rollout_id"] == rid and lock["pid"] == 0

    resumed = _guardrail("resume", rid, "--state", state, "--output", "json")
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    final = json.loads(resumed.stdout)
    assert (final["outcome"], final["state"]) == ("rolled_back", "done")
    assert fleet(state) == [("deploy", "r3", "2.1-bad"), ("rollback", "r3", "1.0")]  # not rolled back twice
    with closing(SQLiteStore(state)) as store:
        assert store.step(rid, "verify")["detail"]["recovered"] is True


def test_a_bug_before_any_decision_halts_without_touching_anything_more(work, state):
    plan = write_plan(work, "good")
    crashed = _guardrail("rollout", plan, "--state", state, "--output", "json", CRASHPOINT_AT="bake.passed#1")
    assert crashed.returncode == 3, crashed.stdout + crashed.stderr
    doc = json.loads(crashed.stdout)
    assert "nothing more was changed" in doc["reason"] and f"guardrail resume {doc['rollout_id']}" in doc["reason"]
    assert fleet(state) == [("deploy", "r3", "2.0")]
    resumed = _guardrail("resume", doc["rollout_id"], "--state", state, "--output", "json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    deployed = fleet(state)  # r1 and r2 deploy in parallel: in either order
    assert deployed[0] == ("deploy", "r3", "2.0") and sorted(deployed[1:]) == [("deploy", "r1", "2.0"),
                                                                               ("deploy", "r2", "2.0")]


def test_an_overflowing_recovery_duration_never_ends_as_rolled_back_without_a_rollback(work, state):
    """The attack's plan: ``verify_recovery.for: "9"*400 + "s"`` (infinite seconds) crashed
    after ``FAILED: r3`` and before any rollback, and the process exited 1."""
    api = Guardrail(state)
    load = api.load

    def overflowing(path):
        plan = load(path)
        object.__setattr__(plan.rollout.verify_recovery, "for_", float("9" * 400))
        return plan

    api.load = overflowing
    try:
        assert math.isinf(float("9" * 400))
        result = api.rollout(write_plan(work, "bad", change={"version": "2.1-bad"}))
    finally:
        api.close()
    assert result.outcome == "halted" and result.exit_code == 3, result
    assert "ValueError" in result.reason and "rolled back r3" in result.reason
    assert fleet(state) == [("deploy", "r3", "2.1-bad"), ("rollback", "r3", "1.0")]


def test_an_uncaught_exception_in_the_cli_exits_70_naming_its_log(tmp_path):
    state = tmp_path / "st" / "state.db"
    result = _guardrail("crash-now", GUARDRAIL_STATE=str(state))
    assert result.returncode == 70, result.stdout + result.stderr
    log = state.parent / "guardrail-crash.log"
    [line] = result.stderr.strip().splitlines()  # one line, no traceback on the terminal
    assert line == (f"internal error: a person is needed (exit 70): guardrail failed with KeyError; "
                    f"the traceback is in {log}")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError: 'a bug that mentions nothing secret'" in text
    assert "guardrail crash-now" in text.splitlines()[0]
