"""The rollout engine end to end on the simulated fleet (virtual clock: hours of bake in
well under a second): every transition of the state machine, rollbacks in reverse wave
order, late failures in an earlier wave, ``for:`` holds, baselines, and argv values full
of shell metacharacters.

Each test copies ``tests/data/engine`` into its own tmp dir, edits a copy of
``plans/base.yaml`` and runs ``guardrail rollout`` through ``CliRunner``; assertions
read the state file back with ``SQLiteStore`` and the fleet log the ``sim`` deployer
wrote, not only the exit code.
"""

from __future__ import annotations

import json
import shutil
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from typer.testing import Result
from typer.testing import CliRunner

from guardrail import hookimpl
from guardrail.api import Guardrail
from guardrail.cli import create_app
from guardrail.plugin.manager import get_plugin_manager
from guardrail.state.sqlite import SQLiteStore
from guardrail_plugins.sim import FleetLog

SERVICE = "engine-test"
MINUTE = 60.0


from support.engine_plans import DATA, rollout, run, state, states, work, write_plan, write_policy  # noqa: F401



def kinds(store: SQLiteStore, rollout_id: str, kind: str) -> list[dict]:
    return store.events(rollout_id, kind)


def fleet(state: Path) -> list[tuple[str, str, str]]:
    """(action, region, version) of every deploy and rollback the sim deployer did, in order."""
    log = FleetLog(state.parent / f"sim-fleet-{SERVICE}.jsonl")
    return [(r["action"], r["region"], r["version"]) for r in log.records if r.get("action") != "start"]


def t0(store: SQLiteStore, rollout_id: str) -> float:
    return store.events(rollout_id, "rollout.started")[0]["at"]


FAILED_PATH = ["failed", "rolling_back", "rolled_back", "verifying_recovery", "done"]


# --- the happy path --------------------------------------------------------------------


def test_promoted_every_wave_in_order_earlier_waves_stay_watched(work, state):
    doc = rollout(write_plan(work, "good"), state, 0)
    assert doc["outcome"] == "promoted" and doc["state"] == "promoted" and doc["exit_code"] == 0
    assert [r["verdict"] for w in doc["waves"] for r in w["regions"]] == ["pass", "pass", "pass"]
    assert all(r["rolled_back_at"] is None for w in doc["waves"] for r in w["regions"])
    assert doc["failing_checks"] == [] and doc["incident"] is None

    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        assert store.events(rid)[0]["kind"] == "rollout.started"
        assert states(store, rid) == ["deploying", "baking", "deploying", "baking", "promoted"]
        assert [e["wave"] for e in kinds(store, rid, "wave.passed")] == ["canary", "main"]
        steps = {s["key"]: s for s in store.steps(rid)}
        assert {k for k in steps if k.startswith(("deploy:", "rollback:"))} == {"deploy:r3", "deploy:r1", "deploy:r2"}
        for key in ("deploy:r3", "deploy:r1", "deploy:r2"):
            assert steps[key]["status"] == "done" and steps[key]["attempts"] == 1
        start = t0(store, rid)
        assert steps["deploy:r3"]["started_at"] == start
        assert steps["deploy:r1"]["started_at"] == steps["deploy:r2"]["started_at"] == start + 30 * MINUTE
        canary = store.measurements(rid, "bake:canary")
        main = store.measurements(rid, "bake:main")
        # Tick 0 right after the deploy, then every 30s up to and including the end of the bake.
        assert {m["region"] for m in canary} == {"r3"} and len(canary) == 61
        assert {m["region"] for m in main} == {"r3", "r1", "r2"} and len(main) == 3 * 121  # r3 still watched
        assert {m["status"] for m in canary + main} == {"pass"}
        assert all(m["query"] == f'max(errors_ratio{{region="{m["region"]}"}})' for m in main)
        assert store.lock(SERVICE) is None
        row = store.rollout(rid)
        assert row["finished_at"] and row["outcome"] == "promoted"
    deployed = fleet(state)  # r1 and r2 deploy in parallel: either may be recorded first
    assert deployed[0] == ("deploy", "r3", "2.0")
    assert sorted(deployed[1:]) == [("deploy", "r1", "2.0"), ("deploy", "r2", "2.0")]


# --- failure, rollback, recovery -------------------------------------------------------


def test_a_failing_policy_rolls_back_and_verifies_recovery(work, state):
    doc = rollout(write_plan(work, "bad", change={"version": "2.1-bad"}), state, 1)
    assert doc["outcome"] == "rolled_back" and doc["state"] == "done"
    [finding] = doc["failing_checks"]
    assert finding["region"] == "r3" and finding["check"] == "errors" and finding["policy"] == "errors"
    assert finding["value"] == 0.9 and finding["threshold"] == 0.5 and finding["comparison"] == "> 0.5"
    assert finding["query"] == 'max(errors_ratio{region="r3"})' and finding["phase"] == "bake:canary"
    assert doc["incident"]["status"] == "resolved"

    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        assert states(store, rid) == ["deploying", "baking"] + FAILED_PATH
        start = t0(store, rid)
        assert finding["first_breach_at"] == start + 5 * MINUTE  # the scenario's "after: 5m"
        failed = kinds(store, rid, "state.failed")[0]
        assert failed["at"] == start + 5 * MINUTE and failed["findings"][0]["value"] == 0.9
        recovery = store.measurements(rid, "recovery")
        assert {m["region"] for m in recovery} == {"r3"} and {m["check"] for m in recovery} == {"errors"}
        assert recovery[-1]["at"] - recovery[0]["at"] >= 5 * MINUTE  # verify_recovery: {for: 5m}
        # The reading at the rollback's own instant still shows the bad version (as a real
        # scrape would); every later one passes.
        assert recovery[0]["status"] == "fail" and {m["status"] for m in recovery[1:]} == {"pass"}
        assert store.lock(SERVICE) is None
        incident = store.incident(rid)
        assert incident["status"] == "resolved" and incident["rolled_back"] == ["r3"]
        assert [r["state"] for r in incident["regions"]] == ["rolled back", "untouched (1.0)", "untouched (1.0)"]
    assert fleet(state) == [("deploy", "r3", "2.1-bad"), ("rollback", "r3", "1.0")]  # r1/r2 never touched


def test_parallel_wave_where_one_deploy_fails_rolls_back_both_and_the_canary(work, state):
    plan = write_plan(work, "r1-deploy-fails", deploy={"with": {"fail_regions": ["r1"]}})
    doc = rollout(plan, state, 1)
    regions = {r["region"]: r for w in doc["waves"] for r in w["regions"]}
    assert regions["r1"]["verdict"] == "deploy_failed" and regions["r1"]["deployed_at"] is None
    assert regions["r2"]["deployed_at"] and regions["r3"]["deployed_at"]
    assert all(regions[r]["rolled_back_at"] for r in ("r1", "r2", "r3"))
    assert doc["failing_checks"][0]["check"] == "deploy" and "fail_regions" in doc["failing_checks"][0]["reason"]

    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        assert states(store, rid) == ["deploying", "baking", "deploying"] + FAILED_PATH
        assert "deploy failed in r1" in store.rollout(rid)["reason"]
        assert kinds(store, rid, "state.rolling_back")[0]["regions"] == ["r2", "r1", "r3"]
        assert [e["region"] for e in kinds(store, rid, "region.rolled_back")] == ["r2", "r1", "r3"]
        assert [e["region"] for e in kinds(store, rid, "region.deploy_failed")] == ["r1"]
        steps = {s["key"]: s["status"] for s in store.steps(rid)}
        assert steps["deploy:r1"] == "failed" and steps["deploy:r2"] == "done"
    done = fleet(state)
    assert ("deploy", "r2", "2.0") in done and ("deploy", "r1", "2.0") not in done
    assert [a for a in done if a[0] == "rollback"] == [("rollback", "r2", "1.0"), ("rollback", "r1", "1.0"),
                                                         ("rollback", "r3", "1.0")]


def test_a_sequential_wave_stops_at_the_first_failed_deploy(work, state):
    plan = write_plan(work, "sequential", deploy={"with": {"fail_regions": ["r1"]}},
                      waves=[{"name": "canary", "regions": ["r3"], "bake": "30m"},
                             {"name": "main", "regions": ["r1", "r2"], "bake": "1h"}])
    doc = rollout(plan, state, 1)
    regions = {r["region"]: r for w in doc["waves"] for r in w["regions"]}
    assert regions["r2"]["verdict"] == "not_deployed" and regions["r2"]["rolled_back_at"] is None
    with closing(SQLiteStore(state)) as store:
        assert kinds(store, doc["rollout_id"], "state.rolling_back")[0]["regions"] == ["r1", "r3"]
        assert store.step(doc["rollout_id"], "deploy:r2") is None


def test_a_failed_rollback_exits_4_and_keeps_the_lock(work, state):
    plan = write_plan(work, "rollback-fails", change={"version": "2.1-bad"},
                      deploy={"with": {"fail_rollback_regions": ["r3"]}})
    result = run("rollout", plan, "--state", state)  # text output: the loud message
    assert result.exit_code == 4, result.output
    assert "A PERSON IS NEEDED NOW" in result.output and "rollback failed in r3" in result.output

    with closing(SQLiteStore(state)) as store:
        [row] = store.rollouts()
        rid = row["id"]
        assert row["state"] == "rollback_failed" and row["outcome"] == "rollback_failed" and row["finished_at"]
        assert states(store, rid) == ["deploying", "baking", "failed", "rolling_back", "rollback_failed"]
        assert store.step(rid, "rollback:r3")["status"] == "failed"
        assert not kinds(store, rid, "state.verifying_recovery")
        lock = store.lock(SERVICE)
        assert lock["rollout_id"] == rid and lock["pid"] == 0 and "rollback failed" in lock["holder"]
        incident = store.incident(rid)
        assert incident["status"] == "identified" and "rollback failed in r3" in incident["note"]
        assert [r["state"] for r in incident["regions"]][0] == "rollback failed"
    assert fleet(state) == [("deploy", "r3", "2.1-bad")]  # r3 still runs the bad version


def test_recovery_not_achieved_exits_4(work, state):
    """The failure is not the change's (a scenario incident at a fixed offset): rolling back
    does not fix it, recovery times out after 4 x verify_recovery.for, a person is needed."""
    persisting = {"plugin": "sim", "scenario": "../scenarios/persisting.yaml"}
    plan = write_plan(work, "persisting", deploy={"with": {"scenario": "../scenarios/persisting.yaml"}},
                      sources={"prometheus": persisting})
    doc = rollout(plan, state, 4)
    assert doc["outcome"] == "rollback_failed" and "recovery not achieved" in doc["reason"]
    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        assert states(store, rid) == ["deploying", "baking", "failed", "rolling_back", "rolled_back",
                                      "verifying_recovery", "rollback_failed"]
        recovery = store.measurements(rid, "recovery")
        assert {m["status"] for m in recovery} == {"fail"}
        assert recovery[-1]["at"] - recovery[0]["at"] >= 4 * 5 * MINUTE
        assert store.incident(rid)["status"] == "identified"
        assert store.lock(SERVICE)["pid"] == 0  # kept for a person
    assert fleet(state) == [("deploy", "r3", "2.0"), ("rollback", "r3", "1.0")]


# --- late failures and what gets rolled back ---------------------------------------------


def test_a_late_failure_in_the_canary_stops_the_rollout_and_rolls_back_everything(work, state):
    doc = rollout(write_plan(work, "late", change={"version": "2.2-late"}), state, 1)
    [finding] = doc["failing_checks"]
    assert finding["region"] == "r3" and finding["phase"] == "bake:main" and finding["wave"] == "canary"
    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        start = t0(store, rid)
        assert states(store, rid) == ["deploying", "baking", "deploying", "baking"] + FAILED_PATH
        assert kinds(store, rid, "state.failed")[0]["at"] == start + 45 * MINUTE  # 15m into main's bake
        assert [e["wave"] for e in kinds(store, rid, "wave.passed")] == ["canary"]
        assert [e["region"] for e in kinds(store, rid, "region.rolled_back")] == ["r2", "r1", "r3"]
        assert store.step(rid, "decision:failed")["detail"]["waves"] == ["canary", "main"]
    assert [a for a in fleet(state) if a[0] == "rollback"] == [("rollback", "r2", "1.0"), ("rollback", "r1", "1.0"),
                                                                ("rollback", "r3", "1.0")]


@pytest.mark.parametrize("version, policy, rolled_back, untouched", [
    # r3 fails during main's bake: the failure belongs to canary (r3's wave) *and* to main
    # (the wave baking when it showed), so failing-wave rolls back all three, as all-deployed.
    ("2.2-late", "failing-wave", ["r2", "r1", "r3"], []),
    # r1 fails during main's bake: only main is rolled back; r3 keeps the new version.
    ("2.3-r1-bad", "failing-wave", ["r2", "r1"], ["r3"]),
    ("2.3-r1-bad", "all-deployed", ["r2", "r1", "r3"], []),
])
def test_on_failure_rollback_chooses_the_regions(work, state, version, policy, rolled_back, untouched):
    plan = write_plan(work, f"{version}-{policy}", change={"version": version}, on_failure={"rollback": policy})
    doc = rollout(plan, state, 1)
    regions = {r["region"]: r for w in doc["waves"] for r in w["regions"]}
    assert [r for r in ("r2", "r1", "r3") if regions[r]["rolled_back_at"]] == rolled_back
    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        assert kinds(store, rid, "state.rolling_back")[0]["regions"] == rolled_back
        incident = store.incident(rid)
        assert incident["rolled_back"] == rolled_back
        for region in untouched:
            assert next(r["state"] for r in incident["regions"] if r["region"] == region) == f"on {version}"
            assert FleetLog(state.parent / f"sim-fleet-{SERVICE}.jsonl").version(region, "1.0") == version
        recovery = store.measurements(rid, "recovery")
        assert {m["region"] for m in recovery} == set(rolled_back)


# --- for: holds and the bake extension ---------------------------------------------------


def test_a_breach_still_holding_at_the_end_of_the_bake_extends_it_until_it_resolves(work, state):
    plan = write_plan(work, "blip", change={"version": "2.5-blip"}, policies=["../policies/latency.yaml"],
                      waves=[{"name": "canary", "regions": ["r3"], "bake": "30m"}])
    doc = rollout(plan, state, 0)
    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        start = t0(store, rid)
        bake = {m["at"] - start: m for m in store.measurements(rid, "bake:canary")}
        assert bake[30 * MINUTE]["pending"] and bake[30 * MINUTE]["status"] == "pass"  # holding at the bake's end
        assert "breaching for 3m" in bake[30 * MINUTE]["reason"]
        assert max(bake) > 30 * MINUTE, "the bake was not extended"
        assert {m["status"] for m in bake.values()} == {"pass"}
        passed = kinds(store, rid, "bake.passed")[0]["at"] - start
        assert 32 * MINUTE <= passed <= 33 * MINUTE  # promoted as soon as the breach resolved
        assert not bake[passed]["pending"] and all(bake[t]["pending"] for t in bake if 27 * MINUTE <= t < 32 * MINUTE)
        assert states(store, rid) == ["deploying", "baking", "promoted"]


def test_a_breach_that_outlasts_for_fails_when_the_hold_elapses(work, state):
    plan = write_plan(work, "stuck", change={"version": "2.6-stuck"}, policies=["../policies/latency.yaml"],
                      waves=[{"name": "canary", "regions": ["r3"], "bake": "30m"}])
    doc = rollout(plan, state, 1)
    [finding] = doc["failing_checks"]
    with closing(SQLiteStore(state)) as store:
        start = t0(store, doc["rollout_id"])
        assert finding["first_breach_at"] == start + 27 * MINUTE
        assert kinds(store, doc["rollout_id"], "state.failed")[0]["at"] == start + 37 * MINUTE
    assert finding["for"] == "10m" and "held 10m" in finding["reason"]


# --- compare: baseline ----------------------------------------------------------------


def test_baselines_are_captured_before_each_wave_deploys(work, state):
    doc = rollout(write_plan(work, "baseline-good", policies=["../policies/error-log.yaml"]), state, 0)
    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        start = t0(store, rid)
        baselines = store.baselines(rid)
        assert set(baselines) == {(r, "error-log", "error-log-growth") for r in ("r3", "r1", "r2")}
        for region, deployed in (("r3", start), ("r1", start + 30 * MINUTE), ("r2", start + 30 * MINUTE)):
            row = baselines[(region, "error-log", "error-log-growth")]
            assert (row["window_start"], row["window_end"]) == (deployed - 10 * MINUTE, deployed)
            assert 9 < row["value"] < 15 and row["evidence"]["stat"] == "max" and row["evidence"]["samples"] == 21
            assert store.step(rid, f"deploy:{region}")["started_at"] >= row["window_end"]
        reference = {m["region"]: m["reference"] for m in store.measurements(rid, "bake:main")}
        assert reference == {r: baselines[(r, "error-log", "error-log-growth")]["value"] for r in ("r3", "r1", "r2")}


def test_a_relative_breach_of_the_baseline_rolls_back(work, state):
    plan = write_plan(work, "regress", change={"version": "2.7-regress"}, policies=["../policies/error-log.yaml"])
    doc = rollout(plan, state, 1)
    [finding] = doc["failing_checks"]
    with closing(SQLiteStore(state)) as store:
        rid = doc["rollout_id"]
        [row] = store.baselines(rid).values()
        # The version triples the rate from the first sample after its deploy (max ~30):
        # the baseline, the window ending at the deploy, never includes it.
        assert 9 < row["value"] < 15
        assert finding["reference"] == row["value"] and finding["threshold"] == pytest.approx(2 * row["value"])
        assert finding["value"] > 2 * row["value"] and "from baseline" in finding["reason"]
        # The second tick of the bake: the first, at the deploy's instant, reads the old version.
        assert finding["first_breach_at"] == t0(store, rid) + 30
        assert states(store, rid) == ["deploying", "baking"] + FAILED_PATH


# --- every transition is committed before what it announces ------------------------------


class _Observer:
    """A plugin that reads the state file through its own connection at every event."""

    def __init__(self, path: Path):
        self.path, self.seen = path, []

    @hookimpl
    def guardrail_on_event(self, event):
        with closing(SQLiteStore(self.path)) as reader:
            row = reader.rollout(event["rollout_id"])
            steps = {s["key"]: s["status"] for s in reader.steps(event["rollout_id"])}
        self.seen.append((event["kind"], row["state"], steps, event.get("region")))


def test_each_transition_is_in_the_store_before_its_event_and_side_effect(work, state):
    observer = _Observer(state)
    api = Guardrail(state, pm=get_plugin_manager(extra_plugins=[observer]))
    try:
        result = api.rollout(write_plan(work, "observed", change={"version": "2.2-late"}))
    finally:
        api.close()
    assert result.outcome == "rolled_back" and int(result.exit_code) == 1
    seen = observer.seen
    assert seen[0][:2] == ("rollout.started", "pending")
    for kind, stored_state, steps, region in seen:
        if kind.startswith("state."):
            assert stored_state == kind.removeprefix("state."), kind
        if kind == "region.deploying":  # announced, committed as started, not yet done
            assert steps[f"deploy:{region}"] == "started"
        if kind == "region.deployed":
            assert steps[f"deploy:{region}"] == "done"
        if kind == "state.rolling_back":
            assert steps["decision:failed"] == "done" and not any(k.startswith("rollback:") for k in steps)
        if kind == "region.rolled_back":
            assert steps[f"rollback:{region}"] == "done"
        if kind.startswith("incident."):  # notified once the rollback has started (issue 5), never before
            assert steps["decision:failed"] == "done" and stored_state not in ("deploying", "baking", "failed")
    order = [k for k, *_ in seen if not k.startswith("bake.")]
    assert order.index("state.rolling_back") < order.index("incident.identified") < order.index("state.rolled_back")
    assert order.index("state.rolled_back") < order.index("incident.monitoring") < order.index(
        "state.verifying_recovery") < order.index("incident.resolved") < order.index("state.done")


# --- argv values full of shell metacharacters -------------------------------------------

NASTY_REGIONS = ["eu; touch PWNED", "ap south $(touch PWNED)", "us \"dq\" 'sq' * `touch PWNED` \\ |"]
NASTY_VERSION = "2.0; touch PWNED && echo $(id) \"x\" '*' > out {{previous}}"
NASTY_PREVIOUS = "1.0 $(touch PWNED); *"


def test_region_names_and_versions_with_shell_metacharacters_reach_the_program_verbatim(work, state, tmp_path):
    """Region names are free-form mapping keys (NAME_PATTERN applies to the service, waves,
    policies and checks, not to regions), so the metacharacters go in the region names
    themselves, in the version, the previous version, and region vars (a string and a list)."""
    scenario = yaml.safe_load((work / "scenarios" / "fleet.yaml").read_text())
    scenario.update(regions=NASTY_REGIONS, baseline_version=NASTY_PREVIOUS, versions={})
    (work / "scenarios" / "nasty.yaml").write_text(yaml.safe_dump(scenario, allow_unicode=True))
    argv_log = tmp_path / "argv.jsonl"
    template = [sys.executable, "../scripts/record_argv.py", "{{region}}", "{{version}}", "--dc={{dc}}", "{{hosts}}"]
    plan = write_plan(
        work, "nasty",
        change={"version": NASTY_VERSION, "previous": NASTY_PREVIOUS},
        sources={"prometheus": {"plugin": "sim", "scenario": "../scenarios/nasty.yaml"}},
        replace={
            "deploy": {"plugin": "command", "with": {
                "deploy": template, "rollback": template[:3] + ["{{previous}}"],
                "env": {"ARGV_LOG": str(argv_log), "FAIL_REGION": NASTY_REGIONS[2]}}},
            "regions": {r: {"vars": {"dc": f"dc {i}; $(touch PWNED) '\"", "hosts": [f"h{i}; ls", f"h {i} *"]}}
                        for i, r in enumerate(NASTY_REGIONS)}},
        waves=[{"name": "canary", "regions": NASTY_REGIONS[:1], "bake": "5m"},
               {"name": "main", "regions": NASTY_REGIONS[1:], "bake": "5m"}],
    )
    doc = rollout(plan, state, 1)  # the third region's deploy is refused: everything rolls back
    calls = [json.loads(line) for line in argv_log.read_text().splitlines()]

    def deploy_argv(i, region):
        return [region, NASTY_VERSION, f"--dc=dc {i}; $(touch PWNED) '\"", f"h{i}; ls", f"h {i} *"]

    assert [(c["action"], c["argv"]) for c in calls] == [
        ("deploy", deploy_argv(0, NASTY_REGIONS[0])),
        ("deploy", deploy_argv(1, NASTY_REGIONS[1])),
        ("deploy", deploy_argv(2, NASTY_REGIONS[2])),
        ("rollback", [NASTY_REGIONS[2], NASTY_PREVIOUS]),
        ("rollback", [NASTY_REGIONS[1], NASTY_PREVIOUS]),
        ("rollback", [NASTY_REGIONS[0], NASTY_PREVIOUS]),
    ]
    assert all(c["key"].endswith(f":{c['action']}:{c['argv'][0]}") for c in calls)
    assert not list(tmp_path.rglob("PWNED")) and not list(Path.cwd().glob("PWNED"))
    # The same names were escaped for PromQL by the sim source and matched their series.
    with closing(SQLiteStore(state)) as store:
        bake = store.measurements(doc["rollout_id"], "bake:canary")
        assert {m["region"] for m in bake} == {NASTY_REGIONS[0]}
        assert {m["status"] for m in bake} == {"pass"} and all(m["value"] == 0.01 for m in bake)
        assert "refusing to deploy" in store.step(doc["rollout_id"], f"deploy:{NASTY_REGIONS[2]}")["detail"]["outcome"]


def test_a_resumed_bake_is_in_state_baking_while_it_bakes(work, state):
    """Halted mid-bake (no evidence), resumed: while the rest of the bake runs the rollout
    is `baking` in the store (what `guardrail status` shows), not still `deploying`."""
    plan = write_plan(work, "absent", policies=["../policies/absent.yaml"])
    first = Guardrail(state)
    try:
        halted = first.rollout(plan)
    finally:
        first.close()
    assert halted.outcome == "halted"
    observer = _Observer(state)
    api = Guardrail(state, pm=get_plugin_manager(extra_plugins=[observer]))
    try:
        again = api.resume(halted.rollout_id)
    finally:
        api.close()
    assert again.outcome == "halted"
    during = {stored for kind, stored, *_ in observer.seen if kind == "bake.tick"}
    assert during == {"baking"}
    with closing(SQLiteStore(state)) as store:
        assert [m["tick"] for m in store.measurements(halted.rollout_id, "bake:canary")] == [0, 1, 2, 3, 4, 5]
