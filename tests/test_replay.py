"""``guardrail backtest PLAN.yaml``: a whole plan replayed over history decides what the
rollout decided.

Every scenario of the library (failing, healthy, and the gap of every series) is
rolled out live on the simulated fleet; its history, as if nothing had been rolled
back, is backfilled into one real Prometheus (each scenario a few weeks apart, so
their series never overlap); the plan is then replayed against that Prometheus with
the deploy times history shows. Both must reach the same outcome, on the same check
and region, at decision times no further apart than one scrape step.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from guardrail.errors import UsageError
from guardrail.tools.replay import replay_plan
from support import scenario_library

lib = scenario_library.load()
NAMES = lib.names()
WEEK = 7 * 86400.0
ENDS = {"state.promoted": "promoted", "state.halted": "halted", "state.failed": "rolled_back"}


def live_decision(run) -> tuple[str, float]:
    """(outcome, time) of the live rollout's decision: its failure, its halt or its promotion."""
    ended = [e for e in run.events if e["kind"] in ENDS]
    return ENDS[ended[0]["kind"]], ended[0]["at"]


def history_of(run) -> dict[str, float]:
    """When the fleet log shows each region on the new version: what history says."""
    return {region: spans[0][0] for region, spans in run.exposure.items() if spans}


def step_of(name: str) -> float:
    from guardrail_plugins.sim.scenario import Scenario

    return Scenario.model_validate(yaml.safe_load((lib.HERE / name / "scenario.yaml").read_text())).step


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Every scenario rolled out live on the sim, each starting a whole number of weeks
    after its seed time (times of day and weekdays unchanged) so that their histories
    can share one Prometheus."""
    return {name: lib.run(name, workdir=tmp_path_factory.mktemp(name),
                          start=lib.epoch(lib.REPLAY_AT[name]) + index * 4 * WEEK)
            for index, name in enumerate(NAMES)}


@pytest.fixture(scope="module")
def history(library, tmp_path_factory):
    """One real Prometheus holding every run's history without its rollback (promtool backfill)."""
    from support.prometheus import PrometheusServer, backfill

    base = tmp_path_factory.mktemp("replay-prometheus")
    for name, run in library.items():
        _, decided = live_decision(run)
        store = lib.store_of(run, before=run.decided_at)
        backfill(store, store.history_start_ms / 1000.0, decided + 900, base / "tsdb")
    steps = {step_of(name) for name in NAMES}
    assert steps == {15.0}, steps  # one global interval says every series' sample interval
    with PrometheusServer(base, tsdb=base / "tsdb", global_interval="15s") as server:
        yield server


def replay(run, prometheus, **kw):
    return replay_plan(run.directory / "rollout.yaml", sources={"prometheus": {"plugin": "prometheus",
                                                                              "url": prometheus.url}}, **kw)


@pytest.mark.prometheus
@pytest.mark.parametrize("name", NAMES)
def test_the_replay_of_a_plan_decides_what_its_rollout_decided(library, history, name):
    run = library[name]
    outcome, decided = live_decision(run)
    result = replay(run, history, deployed=history_of(run))
    assert (result.outcome, result.exit_code) == (outcome, {"promoted": 0, "rolled_back": 1, "halted": 3}[outcome]), \
        result.reason
    assert abs(result.decided_at - decided) <= step_of(name), (result.decided_at - run.start, decided - run.start)
    assert [(f["region"], f["policy"], f["check"]) for f in result.findings[:1]] == \
        [(f["region"], f["policy"], f["check"]) for f in run.findings[:1]]
    if run.findings:
        assert (result.region, result.check) == (run.findings[0]["region"], run.findings[0]["check"])
    assert not result.caveats
    exposed = {e.region: e for e in result.exposure}
    for region, spans in run.exposure.items():  # guardrail would have exposed what the rollout exposed
        assert exposed[region].deployed_at == spans[0][0], region
        if spans[0][1] is not None:
            assert exposed[region].rolled_back_at == pytest.approx(decided, abs=step_of(name)), region
    if outcome == "rolled_back":
        assert "recovery" in result.recovery and "not verified" in result.recovery


@pytest.mark.prometheus
@pytest.mark.parametrize("name", ["second-wave-regression", "healthy-daily-restart"])
def test_as_if_guardrail_had_run_the_plan_from_a_time(library, history, name):
    """``--deployed-at``: history followed guardrail's own schedule; with the sim's
    instant deploys that is the live rollout's, so the answer is the same."""
    run = library[name]
    outcome, decided = live_decision(run)
    result = replay(run, history, deployed_at=run.start)
    assert result.outcome == outcome and abs(result.decided_at - decided) <= 15.0
    assert result.deployed == history_of(run)


@pytest.mark.prometheus
def test_a_region_history_never_deployed_ends_the_answer_there(library, history):
    """The canary passed; history never ran the change in the main wave: the replay
    says what it knows (the canary would have passed) and no more."""
    run = library["second-wave-regression"]
    canary = history_of(run)["r3"]
    result = replay(run, history, deployed={"r3": canary})
    assert (result.outcome, result.exit_code, result.decided_wave) == ("incomplete", 3, "canary")
    assert "r1, r2" in result.reason and "wave canary" in result.reason
    assert result.decided_at == canary + 1800  # the canary's bake, covered
    assert [(e.region, e.deployed_at, e.history_deployed_at) for e in result.exposure] == \
        [("r3", canary, canary), ("r1", None, None), ("r2", None, None)]


@pytest.mark.prometheus
def test_a_region_history_deployed_before_guardrail_would_have_is_a_caveat(library, history):
    run = library["r3-sender-restarts"]
    times = history_of(run)
    early = {"r3": times["r3"], "r1": times["r3"] + 60, "r2": times["r3"] + 60}
    result = replay(run, history, deployed=early)
    assert result.outcome == "rolled_back"
    assert [c.split(" ")[0] for c in result.caveats] == []  # the canary failed before r1 and r2 were reached
    assert {e.region: e.history_exposed_for for e in result.exposure}["r1"] == pytest.approx(
        result.ended_at - times["r3"] - 60)
    later = library["second-wave-regression"]
    times = history_of(later)
    result = replay(later, history, deployed={**times, "r1": times["r3"] + 600})
    assert [c.split(" ")[0] for c in result.caveats] == ["r1"] and "20m before guardrail" in result.caveats[0]


@pytest.mark.prometheus
def test_until_stops_the_replay_before_a_decision(library, history):
    run = library["r3-sender-restarts"]
    times = history_of(run)
    result = replay(run, history, deployed=times, until=times["r3"] + 120)
    assert (result.outcome, result.exit_code, result.decided_at) == ("halted", 3, times["r3"] + 120)
    assert "(--until) before a decision" in result.reason and not result.findings and result.decided_wave is None


def test_deploy_times_are_refused_before_any_query(tmp_path):
    plan = lib.HERE / "r3-sender-restarts" / "rollout.yaml"
    with pytest.raises(UsageError, match="--deployed names r9"):
        replay_plan(plan, deployed={"r9": 0.0})
    with pytest.raises(UsageError, match="--deployed REGION=TIME"):
        replay_plan(plan)
    with pytest.raises(UsageError, match="r3 .wave canary, the first. is not known"):
        replay_plan(plan, deployed={"r1": 0.0})


# --- the command line -------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator():
    import jsonschema

    from guardrail.report.output import output_schema

    return jsonschema.Draft202012Validator(output_schema())


@pytest.mark.prometheus
def test_the_command_line_replays_a_plan_as_json_and_html(library, history, cli, validator, tmp_path):
    run = library["second-wave-regression"]
    _, decided = live_decision(run)
    deployed = [f"--deployed={r}={lib.iso(t)}" for r, t in history_of(run).items()]
    report = tmp_path / "replay.html"
    args = ["backtest", str(run.directory / "rollout.yaml"), "--prometheus", history.url, *deployed]
    result = cli(*args, "--output", "json", "--report", str(report))
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert not list(validator.iter_errors(doc)), next(iter(validator.iter_errors(doc))).message
    assert (doc["command"], doc["replay"], doc["outcome"], doc["exit_code"]) == ("backtest", True, "rolled_back", 1)
    assert (doc["region"], doc["check"]) == (run.findings[0]["region"], run.findings[0]["check"])
    assert doc["rollout_id"].startswith("replay-") and doc["state"] == "done"
    assert doc["started_at"] == lib.iso(history_of(run)["r3"]) and doc["decided_at"] == decided
    assert [r["verdict"] for w in doc["waves"] for r in w["regions"]] == ["rolled_back", "fail", "rolled_back"]
    html = report.read_text()
    assert "guardrail replay report" in html and "nothing was deployed" in html
    text = cli(*args)
    assert text.exit_code == 1, text.output
    assert "would have ROLLED BACK" in text.output and "mail-process-restarts in r1" in text.output
    assert "recovery not verified" in text.output


@pytest.mark.prometheus
def test_a_replay_stores_every_event_as_a_replay(library, history, tmp_path):
    from guardrail.state.sqlite import SQLiteStore

    run = library["r3-sender-restarts"]
    state = tmp_path / "replay.db"
    result = replay(run, history, deployed=history_of(run), state=state)
    store = SQLiteStore(state)
    try:
        events = store.events(result.rollout_id)
        assert events and all(e.get("replay") is True for e in events)
        kinds = {e["kind"] for e in events}
        assert "region.rolled_back" in kinds and not kinds & {"incident.identified", "action.ran",
                                                             "state.verifying_recovery"}
        [rollback] = [s for s in store.steps(result.rollout_id, "rollback:")]
        assert "recorded, not run" in rollback["detail"]["outcome"]
    finally:
        store.close()


def test_the_policy_form_still_needs_its_region(cli):
    policy = Path(lib.HERE).parents[1] / "policies" / "service-restarts.yaml"
    result = cli("backtest", str(policy), "--deployed-at", "2023-01-05T17:10:00Z", "--prometheus", "http://x")
    assert result.exit_code == 2 and "--region is required" in result.output
    plan = lib.HERE / "r3-sender-restarts" / "rollout.yaml"
    result = cli("backtest", str(plan), "--region", "r3", "--deployed-at", "2023-01-05T17:10:00Z")
    assert result.exit_code == 2 and "--region and --control are for a policy file" in result.output
    result = cli("backtest", str(plan), "--deployed", "r3")
    assert result.exit_code == 2 and "expected REGION=TIME" in result.output


def test_variables_only_the_world_facing_parts_read_need_not_be_set(tmp_path):
    """A production plan names its deploy tool, incident sink and Prometheus through the
    environment; a replay runs none of the first two and reads history elsewhere."""
    scenario = lib.HERE / "r3-sender-restarts" / "scenario.yaml"
    plan = tmp_path / "rollout.yaml"
    plan.write_text(f"""apiVersion: guardrail/v1
kind: Rollout
service: mail-platform
change: {{version: "2023.01.05", previous: "2022.12.14"}}
deploy: {{plugin: command, with: {{deploy: ["${{env:DEPLOY_TOOL}}", "{{{{region}}}}"],
                                   rollback: ["${{env:DEPLOY_TOOL}}", "{{{{region}}}}"]}}}}
sources:
  prometheus: {{url: "${{env:PROMETHEUS_URL}}"}}
regions: {{r3: {{}}, r1: {{}}}}
waves: [{{name: canary, regions: [r3], bake: 10m}}, {{name: main, regions: [r1], bake: 10m, approval: manual}}]
policies: [{Path(lib.HERE).parents[1] / "policies" / "service-restarts.yaml"}]
on_failure:
  incident: {{plugin: alertmanager, with: {{url: "${{env:ALERTMANAGER_URL}}"}}}}
""")
    sim = {"prometheus": {"plugin": "sim", "scenario": str(scenario)}}
    result = replay_plan(plan, deployed_at=lib.epoch("2023-01-05T17:10:00Z"), sources=sim)
    assert result.outcome == "promoted", result.reason  # nothing deployed on the sim: healthy; no approval asked
    from guardrail.errors import ConfigError

    with pytest.raises(ConfigError, match="PROMETHEUS_URL is not set"):  # a source the replay reads
        replay_plan(plan, deployed_at=lib.epoch("2023-01-05T17:10:00Z"))
