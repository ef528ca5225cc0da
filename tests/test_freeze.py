"""Change freezes are enforced before every wave, not only when the rollout starts
(``guardrail.rollout.freeze``): the simulated clock starts just before a freeze, the
canary's bake runs into it, and the next wave must not deploy there."""

from __future__ import annotations

from contextlib import closing

from guardrail.state.sqlite import SQLiteStore
from guardrail_plugins.sim import FleetLog
from support.engine_plans import rollout, run, state, states, work, write_plan  # noqa: F401

SERVICE = "engine-test"
CHRISTMAS = "2026-12-24 00:00 - 2026-12-27 00:00"


def fleet(state) -> list[tuple[str, str]]:
    log = FleetLog(state.parent / f"sim-fleet-{SERVICE}.jsonl")
    return [(r["action"], r["region"]) for r in log.records if r.get("action") != "start"]


def test_a_freeze_that_begins_between_two_waves_halts_before_the_second(work, state):  # noqa: F811
    # The canary deploys at 23:45 and bakes 30 minutes: the freeze begins during its bake.
    plan = write_plan(work, "christmas", windows={"deny": [CHRISTMAS]})
    halted = rollout(plan, state, 3, "--start-at", "2026-12-23T23:45:00Z")
    assert halted["outcome"] == "halted"
    assert f"change freeze {CHRISTMAS!r} (UTC) is in force before wave 'main'" in halted["reason"]
    assert f"guardrail resume {halted['rollout_id']}" in halted["reason"]
    assert fleet(state) == [("deploy", "r3")]  # r1 and r2 were never touched
    with closing(SQLiteStore(state)) as store:
        rid = halted["rollout_id"]
        assert states(store, rid) == ["deploying", "baking", "halted"]
        [event] = store.events(rid, "state.halted")
        assert (event["window"], event["wave"]) == (CHRISTMAS, "main")
        assert store.lock(SERVICE)["rollout_id"] == rid  # halted: the lock is kept
    text = run("status", rid, "--state", state).output
    assert "halted" in text and CHRISTMAS in text

    resumed = run("resume", rid, "--state", state, "--json")
    assert resumed.exit_code == 3, resumed.output  # still frozen: still halted, nothing deployed
    assert fleet(state) == [("deploy", "r3")]

    overridden = run("resume", rid, "--state", state, "--json", "--override-window", "CAB approved CHG-1042")
    assert overridden.exit_code == 0, overridden.output
    assert sorted(fleet(state)) == [("deploy", "r1"), ("deploy", "r2"), ("deploy", "r3")]
    with closing(SQLiteStore(state)) as store:
        [event] = store.events(rid, "window.overridden")
        assert (event["window"], event["reason"]) == (CHRISTMAS, "CAB approved CHG-1042")


def test_a_daily_window_in_the_plans_time_zone_stops_the_next_wave(work, state):  # noqa: F811
    # Monday 20:45 UTC is 21:45 in Paris; the canary's bake ends at 22:15 there.
    plan = write_plan(work, "nightly", windows={"deny": ["Mon-Fri 22:00-23:00"], "timezone": "Europe/Paris"})
    halted = rollout(plan, state, 3, "--start-at", "2026-01-05T20:45:00Z")
    assert "change freeze 'Mon-Fri 22:00-23:00' (Europe/Paris) is in force before wave 'main'" in halted["reason"]
    assert fleet(state) == [("deploy", "r3")]
    # The same plan on a Saturday evening runs through.
    assert rollout(plan, work.parent / "saturday" / "state.db", 0, "--start-at", "2026-01-10T20:45:00Z")["outcome"] == "promoted"


def test_approving_a_wave_inside_a_freeze_halts_naming_it(work, state):  # noqa: F811
    plan = write_plan(work, "approval", windows={"deny": [CHRISTMAS]}, waves=[
        {"name": "canary", "regions": ["r3"], "bake": "30m"},
        {"name": "main", "regions": ["r1", "r2"], "bake": "1h", "approval": "manual"}])
    waiting = rollout(plan, state, 3, "--start-at", "2026-12-23T23:45:00Z")
    assert "waits for approval" in waiting["reason"]
    approved = run("approve", waiting["rollout_id"], "--state", state, "--json")
    assert approved.exit_code == 3, approved.output
    assert f"change freeze {CHRISTMAS!r}" in approved.stdout
    assert fleet(state) == [("deploy", "r3")]
