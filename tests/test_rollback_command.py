"""``guardrail rollback ID`` rolls a promoted release back, and ``abort --detach`` only
records an abort for whoever drives the rollout next.

The simulated fleet's log (``sim-fleet-<service>.jsonl`` beside the state) is the
deployer's own record of what it was asked to do.
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

from guardrail.state.sqlite import SQLiteStore
from guardrail_plugins.sim import FleetLog
from support.engine_plans import rollout, run, state, states, work, write_plan  # noqa: F401

SERVICE = "engine-test"


def fleet(state: Path) -> list[tuple[str, str, str]]:
    log = FleetLog(state.parent / f"sim-fleet-{SERVICE}.jsonl")
    return [(r["action"], r["region"], r["version"]) for r in log.records if r.get("action") != "start"]


def test_rollback_of_a_promoted_release_goes_in_reverse_wave_order_once_and_verifies_recovery(work, state):
    promoted = rollout(write_plan(work, "good"), state, 0)
    rid = promoted["rollout_id"]
    deployed = fleet(state)
    assert len(deployed) == 3 and {a for a, _, _ in deployed} == {"deploy"}

    result = run("rollback", rid, "--state", state, "--by", "bob", "--reason", "customers report bounces",
                 "--output", "json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert (doc["outcome"], doc["state"]) == ("rolled_back", "done")
    assert doc["reason"] == "aborted: rollback of the promoted release: customers report bounces"
    assert fleet(state)[3:] == [("rollback", "r2", "1.0"), ("rollback", "r1", "1.0"), ("rollback", "r3", "1.0")]
    assert [r["rolled_back_at"] is not None for w in doc["waves"] for r in w["regions"]] == [True] * 3
    assert [(p["action"], p["by"]) for p in doc["people"]] == [("rollback", "bob")]
    assert doc["incident"]["status"] == "resolved"
    with closing(SQLiteStore(state)) as store:
        assert states(store, rid)[-6:] == ["promoted", "aborted", "rolling_back", "rolled_back",
                                           "verifying_recovery", "done"]
        verify = store.step(rid, "verify")
        assert verify["status"] == "done" and verify["detail"]["recovered"] is True
        assert len(store.measurements(rid, "recovery")) > 0  # recovery was watched, not assumed
        assert store.lock(SERVICE) is None

    again = run("rollback", rid, "--state", state)
    assert again.exit_code == 1, again.output
    assert "finished earlier (done); nothing was run" in again.output
    assert len(fleet(state)) == 6  # once


def test_rollback_refuses_what_is_not_the_latest_promoted_release(work, state):
    halted = rollout(write_plan(work, "absent", policies=["../policies/absent.yaml"]), state, 3)
    refused = run("rollback", halted["rollout_id"], "--state", state)
    assert refused.exit_code == 2 and "not a promoted release" in refused.stderr and "abort" in refused.stderr
    run("unlock", SERVICE, "--state", state)
    older = rollout(write_plan(work, "good"), state, 0)
    newer = rollout(write_plan(work, "newer", change={"version": "2.5-blip"}), state, 0)
    stale = run("rollback", older["rollout_id"], "--state", state)
    assert stale.exit_code == 2, stale.output
    assert f"rollout {newer['rollout_id']} (2.5-blip, promoted) came after it" in " ".join(stale.stderr.split())
    aborting = run("abort", newer["rollout_id"], "--state", state)
    assert aborting.exit_code == 2 and f"guardrail rollback {newer['rollout_id']}" in aborting.stderr
    assert [a for a, _, _ in fleet(state)].count("rollback") == 0


def test_abort_detach_records_the_request_and_the_next_resume_carries_it_out(work, state):
    plan = write_plan(work, "manual", waves=[{"name": "canary", "regions": ["r3"], "bake": "30m"},
                                             {"name": "main", "regions": ["r1", "r2"], "bake": "1h",
                                              "approval": "manual"}])
    rid = rollout(plan, state, 3)["rollout_id"]
    detached = run("abort", rid, "--state", state, "--detach", "--by", "carol", "--reason", "wrong build")
    assert detached.exit_code == 0, detached.output
    assert f"abort recorded for rollout {rid}; no process runs it now" in " ".join(detached.output.split())
    assert f"guardrail resume {rid} --state {state}" in " ".join(detached.output.split())
    assert fleet(state) == [("deploy", "r3", "2.0")]  # nothing ran here
    with closing(SQLiteStore(state)) as store:
        assert store.rollout(rid)["state"] == "halted" and store.rollout(rid)["requests"]["abort"] == "wrong build"
    resumed = run("resume", rid, "--state", state, "--output", "json")
    assert resumed.exit_code == 1, resumed.output
    doc = json.loads(resumed.stdout)
    assert doc["reason"] == "aborted: wrong build"
    assert [p["action"] for p in doc["people"]] == ["abort", "resume"] and doc["people"][0]["by"] == "carol"
    assert fleet(state) == [("deploy", "r3", "2.0"), ("rollback", "r3", "1.0")]
