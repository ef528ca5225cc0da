"""Recovery verification (``guardrail.rollout.recovery``): the verdict over successive ticks, and
the ``verify`` step that records it, so a resumed run takes the verdict rather than
verifying again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import pytest

from guardrail.judging.decisions import Failure
from guardrail.state.journal import Journal
from guardrail.rollout.recovery import _Watch, verify_recovery
from guardrail.state.sqlite import SQLiteStore
from support.engine_plans import rollout, run, state, work, write_plan  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


def watch(for_: float = 600.0, timeout: float | None = None):
    events = []
    journal = SimpleNamespace(emit=lambda kind, **data: events.append(kind))
    rollout = SimpleNamespace(verify_recovery=SimpleNamespace(for_=for_, timeout=timeout))
    return _Watch(journal, rollout, 0.0, None), events


def test_recovered_after_clean_ticks_for_the_whole_window():
    w, _ = watch(for_=60.0)
    assert w.observe(0.0, [], live=True) is None
    assert w.observe(30.0, [], live=True) is None
    recovered, note = w.observe(60.0, [], live=True)
    assert recovered and note == "checks passed for 1m after rollback"


def test_a_relapse_behind_a_for_hold_is_counted():
    """Clean, then a breach that holds (a pending pass) before it fails: one relapse."""
    w, events = watch()
    w.observe(0.0, [], live=True)
    w.observe(30.0, [("r3/p/c", "pass", "breaching for 0s of its 1m hold")], live=True)
    w.observe(90.0, [("r3/p/c", "fail", "held 1m")], live=True)
    w.observe(120.0, [("r3/p/c", "fail", "held 1m30s")], live=True)  # the same relapse, not a second one
    assert w.relapses == 1 and events == ["recovery.relapsed"]


def test_never_clean_is_no_relapse_and_times_out():
    w, events = watch(for_=60.0, timeout=120.0)
    assert w.observe(0.0, [("r3/p/c", "fail", "x")], live=True) is None
    recovered, note = w.observe(120.0, [("r3/p/c", "fail", "x")], live=True)
    assert not recovered and "still unhealthy 2m after rollback" in note
    assert w.relapses == 0 and events == []


# --- the verify step: finished with its verdict, never run twice ---------------------------


MINUTE = 60.0


def _persisting(work: Path) -> Path:
    """A failure no deploy caused: rolling back cannot fix it (see scenarios/persisting.yaml)."""
    persisting = {"plugin": "sim", "scenario": "../scenarios/persisting.yaml"}
    return write_plan(work, "persisting", deploy={"with": {"scenario": "../scenarios/persisting.yaml"}},
                      sources={"prometheus": persisting})


def test_the_verify_step_is_done_with_its_outcome_when_recovered(work, state):
    doc = rollout(write_plan(work, "bad", change={"version": "2.1-bad"}), state, 1)
    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        step = store.step(rid, "verify")
        assert step["status"] == "done" and step["attempts"] == 1
        assert step["detail"] == {"start": step["started_at"], "recovered": True,
                                  "outcome": "checks passed for 5m after rollback"}
        recovery = store.measurements(rid, "recovery")
        assert step["finished_at"] == recovery[-1]["at"] >= step["started_at"] + 5 * MINUTE
        [done] = store.events(rid, "state.done")
        assert step["finished_at"] <= done["at"]


def test_the_verify_step_is_failed_with_its_reason_when_not_recovered_and_a_resume_keeps_it(work, state):
    doc = rollout(_persisting(work), state, 4)
    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        step = store.step(rid, "verify")
        assert step["status"] == "failed" and step["detail"]["recovered"] is False
        reason = step["detail"]["outcome"]
        assert reason.startswith("checks still unhealthy 20m after rollback (r3/errors/errors: 0.9 (fails if > 0.5))")
        assert f"recovery not achieved: {reason}" in doc["reason"]
        measured = len(store.measurements(rid, "recovery"))
        assert store.measurements(rid, "recovery")[-1]["at"] == step["finished_at"]

    # A rollout whose recovery failed may be resumed (a person retries): the verdict stands.
    again = run("resume", rid, "--state", state, "--output", "json")
    assert again.exit_code == 4, again.output
    with closing(SQLiteStore(state)) as store:
        assert store.step(rid, "verify") == step
        assert len(store.measurements(rid, "recovery")) == measured


def test_a_resume_after_the_verification_finished_does_not_verify_again(work, state, tmp_path):
    """Killed by a recovery action, which runs once the verification has finished."""
    marker = tmp_path / "killed-once"
    kill_once = [sys.executable, "-c", "import os, pathlib, signal, sys\n"
                 "marker = pathlib.Path(sys.argv[1])\n"
                 "if not marker.exists():\n"
                 "    marker.touch()\n"
                 "    os.kill(os.getppid(), signal.SIGKILL)\n", str(marker)]
    plan = write_plan(work, "killed-in-recovery", change={"version": "2.1-bad"},
                      on_recovery={"actions": [{"plugin": "command", "with": {"run": kill_once}}]})
    killed = subprocess.run([sys.executable, "-m", "guardrail", "rollout", str(plan), "--state", str(state)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    with closing(SQLiteStore(state)) as store:
        [row] = store.rollouts()
        rid = row["id"]
        assert row["state"] == "verifying_recovery"
        step = store.step(rid, "verify")
        assert step["status"] == "done" and step["detail"]["recovered"] is True  # seen finished before any resume
        assert store.step(rid, "action:recovery:0:-")["status"] == "started"
        measured = len(store.measurements(rid, "recovery"))

    resumed = run("resume", rid, "--state", state, "--output", "json")
    assert resumed.exit_code == 1, resumed.output
    assert json.loads(resumed.stdout)["outcome"] == "rolled_back"
    with closing(SQLiteStore(state)) as store:
        assert store.step(rid, "verify") == step  # not started again, not finished again
        assert len(store.measurements(rid, "recovery")) == measured
        assert store.step(rid, "action:recovery:0:-")["status"] == "done"
        assert store.rollout(rid)["reason"] == "r3/errors/errors: 0.9 (fails if > 0.5)"


class _Untouchable:
    """Stands for the evaluator and clock a finished verification must not use."""

    def __getattr__(self, name: str):
        raise AssertionError(f"verified again: .{name} was used")


@pytest.mark.parametrize("recovered, status", [(True, "done"), (False, "failed")])
def test_a_finished_verify_step_is_the_answer_without_measuring(tmp_path, recovered, status):
    outcome = "checks passed for 5m after rollback" if recovered else "checks still unhealthy 20m after rollback (x)"
    with closing(SQLiteStore(tmp_path / "state.db")) as store:
        store.start_step("r-1", "verify", 100.0, {"start": 100.0})
        store.finish_step("r-1", "verify", recovered, 400.0, {"start": 100.0, "recovered": recovered,
                                                              "outcome": outcome})
        journal = Journal(store, "r-1", _Untouchable(), guard=_Untouchable())
        failure = Failure("r3/p/c: 2 (fails if > 1)", [{"region": "r3", "policy": "p", "check": "c"}], ["canary"])
        assert verify_recovery(journal, _Untouchable(), _Untouchable(), failure, ["r3"]) == (recovered, outcome)
        assert store.step("r-1", "verify")["status"] == status
