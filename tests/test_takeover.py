"""Take-overs are a person's explicit, recorded decision, and a superseded rollout acts
again only through one (in-process, simulated time)."""

from __future__ import annotations

import json
from contextlib import closing

from guardrail.state.liveness import superseded_by
from guardrail.state.sqlite import SQLiteStore
from support.engine_plans import rollout, run, state, work, write_plan  # noqa: F401

SERVICE = "engine-test"


def test_a_halted_rollout_is_taken_over_only_with_a_reason_and_acts_again_only_when_taken_back(work, state):
    halted = rollout(write_plan(work, "absent", policies=["../policies/absent.yaml"]), state, 3)
    old = halted["rollout_id"]
    plan = write_plan(work, "quick", waves=[{"name": "canary", "regions": ["r3"], "bake": "30m"}])
    rollout(plan, state, 5)  # a halted rollout keeps its lock for a person

    new = rollout(plan, state, 0, "--take-over", "r3 checked, absent metric is a known gap", "--by", "gina")
    with closing(SQLiteStore(state)) as store:
        [taken] = store.events(new["rollout_id"], "lock.taken_over")
        assert (taken["why"], taken["reason"], taken["previous_rollout"]) == (
            "taken-over", "r3 checked, absent metric is a known gap", old)
        [lost] = store.events(old, "lock.lost")
        assert lost["by_rollout"] == new["rollout_id"] and superseded_by(store, old) == lost

    refused = run("resume", old, "--state", state)
    assert refused.exit_code == 5, refused.output
    assert f"rollout {old} was superseded: rollout {new['rollout_id']} took over" in " ".join(refused.stderr.split())
    aborted = run("abort", old, "--state", state)
    assert aborted.exit_code == 5, aborted.output
    status = json.loads(run("status", old, "--state", state, "--json").stdout)
    assert status["driver"]["condition"] == "superseded"

    back = run("resume", old, "--state", state, "--take-over", "finishing the old one", "--by", "hal",
               "--output", "json")
    assert back.exit_code == 3, back.output  # it acts again (and halts again on its absent metric)
    doc = json.loads(back.stdout)
    assert [(p["action"], p["by"], p["reason"]) for p in doc["people"]] == [
        ("take-over", "hal", "finishing the old one")]
    with closing(SQLiteStore(state)) as store:
        assert superseded_by(store, old) is None
        assert store.lock(SERVICE)["rollout_id"] == old
