"""``guardrail backtest``: the engine's bake replayed over history on a virtual clock.

The central promise: a backtest decides what the rollout decided. A scenario of the
library is rolled out on the simulated fleet; its history (as if nothing had been
rolled back) is then replayed, in-process through the ``sim`` source, and through a
real Prometheus 2.x loaded by ``promtool`` backfill; each must fail at the same tick,
on the same check, with the same baseline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardrail.tools.backtest import backtest
from guardrail.errors import ConfigError, UsageError
from support import scenario_library

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
SCENARIOS = REPO / "examples" / "scenarios"


lib = scenario_library.load()


def plan_policies(name: str) -> list[Path]:
    import yaml

    plan = SCENARIOS / name / "rollout.yaml"
    return [(plan.parent / p).resolve() for p in yaml.safe_load(plan.read_text())["policies"]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two seed scenarios rolled out on the sim: a counter's increase() (restarts) and a
    baseline over a rate (error-log growth)."""
    return {name: lib.run(name, workdir=tmp_path_factory.mktemp(name))
            for name in ("r3-sender-restarts", "danaconnect-error-log-storm")}


def kept_fleet(run) -> Path:
    """The run's fleet log without the rollback: history as if the change had stayed."""
    lib.store_of(run, before=run.decided_at)
    return run.fleet.with_name(f"{run.fleet.stem}-before-{int(run.decided_at)}.jsonl")


def sim_sources(run) -> dict:
    return {"prometheus": {"plugin": "sim", "scenario": str(run.directory / "scenario.yaml"),
                           "fleet": str(kept_fleet(run))}}


def assert_same_decision(result, run):
    finding = run.findings[0]
    assert result.outcome == "fail", result.reason
    assert result.decided_at == run.decided_at, (result.decided_at - run.start, run.decided_at - run.start)
    assert [(f["region"], f["check"]) for f in result.findings] == [(f["region"], f["check"]) for f in run.findings]
    assert result.findings[0]["first_breach_at"] == finding["first_breach_at"]
    for check in result.checks:
        key = ("r3", check.policy, check.check)
        if key in run.baselines:
            assert check.reference == pytest.approx(run.baselines[key], rel=1e-9), check


# --- in-process: the sim answers for past times -----------------------------------------


@pytest.mark.parametrize("name", ["r3-sender-restarts", "danaconnect-error-log-storm"])
def test_a_backtest_over_the_sim_decides_what_the_rollout_decided(runs, name):
    run = runs[name]
    result = backtest(plan_policies(name), region="r3", deployed_at=run.start, until=run.start + 1800,
                      sources=sim_sources(run))
    assert_same_decision(result, run)
    assert result.exit_code == 1


def test_before_the_change_the_same_history_would_have_passed(runs):
    run = runs["r3-sender-restarts"]
    result = backtest(plan_policies("r3-sender-restarts"), region="r3", deployed_at=run.start - 3 * 3600,
                      until=run.start - 2 * 3600, sources=sim_sources(run))
    assert result.outcome == "pass" and result.exit_code == 0 and not result.findings
    assert result.decided_at == run.start - 2 * 3600
    assert {c.status for c in result.checks} == {"pass"}
    assert all(c.evaluations == 121 for c in result.checks)  # every 30s over the hour, both ends


def test_a_control_region_is_a_region_that_waits(runs):
    run = runs["r3-sender-restarts"]
    result = backtest([POLICIES / "service-restarts.yaml"], region="r3", controls=["r1"], deployed_at=run.start,
                      until=run.start + 1800, sources=sim_sources(run))
    assert result.controls == ["r1"] and result.outcome == "fail"
    assert {f["region"] for f in result.findings} == {"r3"}


def test_live_probes_are_left_out_and_listed(runs, tmp_path):
    run = runs["r3-sender-restarts"]
    result = backtest([POLICIES / "service-restarts.yaml", POLICIES / "smtp-reachability.yaml"], region="r3",
                      deployed_at=run.start - 3 * 3600, until=run.start - 2 * 3600, sources=sim_sources(run),
                      variables={"smtp_hosts": ["mx1.example.net"]})
    assert result.skipped == [{"policy": "smtp-reachability", "check": "smtp-port-25",
                               "why": "a live probe (source tcp): it answers for now only, so history cannot replay it"}]
    assert {c.check for c in result.checks} == {"service-restarts", "stalled-sends"}
    with pytest.raises(UsageError, match="every one is a live probe"):
        backtest([POLICIES / "smtp-reachability.yaml"], region="r3", deployed_at=run.start, sources=sim_sources(run))


def test_inputs_are_refused_before_the_first_query(runs):
    run = runs["r3-sender-restarts"]
    policy = [POLICIES / "service-restarts.yaml"]
    with pytest.raises(UsageError, match="--until must be after"):
        backtest(policy, region="r3", deployed_at=run.start, until=run.start - 60, sources=sim_sources(run))
    with pytest.raises(UsageError, match="its own control"):
        backtest(policy, region="r3", controls=["r3"], deployed_at=run.start, sources=sim_sources(run))
    with pytest.raises(UsageError, match="source 'prometheus': url"):
        backtest(policy, region="r3", deployed_at=run.start, sources={"prometheus": {"url": "ftp://x"}})
    with pytest.raises(UsageError, match="--prometheus URL"):
        backtest(policy, region="r3", deployed_at=run.start, sources={})
    with pytest.raises(ConfigError):
        backtest([REPO / "tests" / "data" / "no-such-policy.yaml"], region="r3", deployed_at=run.start)


def test_a_state_file_can_be_kept_for_guardrail_status(runs, tmp_path):
    from guardrail.state.sqlite import SQLiteStore

    run = runs["r3-sender-restarts"]
    result = backtest([POLICIES / "service-restarts.yaml"], region="r3", deployed_at=run.start,
                      until=run.start + 1800, sources=sim_sources(run), state=tmp_path / "kept.db")
    store = SQLiteStore(tmp_path / "kept.db")
    try:
        rows = store.measurements(result.rollout_id)
        assert rows and rows[-1]["at"] == result.decided_at
        assert [r["check"] for r in rows if r["status"] == "fail"] == ["service-restarts"]
    finally:
        store.close()


def test_a_backtest_decides_and_acts_on_nothing(runs, tmp_path):
    """``Engine.decide_wave``: baselines, the (noop) deploy and the bake; the failure is
    only the answer: no rollback, no incident, no recovery, no end state; the lock is freed."""
    from guardrail.errors import NotFound
    from guardrail.state.sqlite import SQLiteStore

    run = runs["r3-sender-restarts"]
    result = backtest([POLICIES / "service-restarts.yaml"], region="r3", deployed_at=run.start,
                      until=run.start + 1800, sources=sim_sources(run), state=tmp_path / "kept.db")
    assert result.outcome == "fail"
    store = SQLiteStore(tmp_path / "kept.db")
    try:
        rid = result.rollout_id
        assert {s["key"]: s["status"] for s in store.steps(rid)} == {
            "baseline:backtest": "done", "deploy:r3": "done", "bake:backtest": "started"}
        assert [e["kind"] for e in store.events(rid)] == ["region.deployed", "state.baking"]
        assert store.rollout(rid)["state"] == "baking" and store.rollout(rid)["outcome"] is None
        assert store.measurements(rid, "recovery") == []
        with pytest.raises(NotFound):
            store.incident(rid)
        assert store.lock("backtest") is None
    finally:
        store.close()


# --- against a real Prometheus ------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(runs, tmp_path_factory):
    """A real Prometheus holding both runs' history, backfilled with promtool."""
    from support.prometheus import PrometheusServer, backfill

    base = tmp_path_factory.mktemp("backtest-prometheus")
    for run in runs.values():
        store = lib.store_of(run, before=run.decided_at)
        backfill(store, store.history_start_ms / 1000.0, run.start + 2 * 3600, base / "tsdb")
    with PrometheusServer(base, tsdb=base / "tsdb", global_interval="15s") as server:  # the scenarios' step
        yield server


@pytest.mark.prometheus
@pytest.mark.parametrize("name", ["r3-sender-restarts", "danaconnect-error-log-storm"])
def test_a_backtest_against_prometheus_finds_the_simulated_first_failure(runs, prometheus, name):
    run = runs[name]
    result = backtest(plan_policies(name), region="r3", deployed_at=run.start, until=run.start + 1800,
                      sources={"prometheus": {"url": prometheus.url}})
    assert_same_decision(result, run)


@pytest.mark.prometheus
def test_the_command_line_against_prometheus(runs, prometheus, cli):
    run = runs["r3-sender-restarts"]
    args = ["backtest", *map(str, plan_policies("r3-sender-restarts")), "--prometheus", prometheus.url,
            "--region", "r3", "--deployed-at", lib.iso(run.start), "--until", lib.iso(run.start + 1800)]
    result = cli(*args, "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["outcome"] == "fail" and data["decided_at"] == run.decided_at
    assert data["findings"][0]["check"] == "mail-process-restarts"
    assert data["decided_at_iso"] == lib.iso(run.decided_at)
    table = cli(*args)
    assert table.exit_code == 1, table.output
    assert "would have FAILED" in table.output and "mail-process-restarts" in table.output
    assert f"+{int((run.decided_at - run.start) // 60)}m" in table.output
    quiet = cli("backtest", str(POLICIES / "service-restarts.yaml"), "--prometheus", prometheus.url, "--region", "r1",
                "--deployed-at", lib.iso(run.start - 3 * 3600))
    assert quiet.exit_code == 0, quiet.output
    assert "would have PASSED" in quiet.output


def test_the_command_line_needs_prometheus(cli):
    result = cli("backtest", str(POLICIES / "service-restarts.yaml"), "--region", "r3", "--deployed-at",
                 "2023-01-05T17:10:00Z")
    assert result.exit_code == 2
    assert "--prometheus URL is required" in result.output


def test_event_observers_do_not_hear_an_imagined_rollout(runs):
    from guardrail.plugin.manager import get_plugin_manager

    heard = []

    class Listener:
        from guardrail import hookimpl

        @hookimpl
        def guardrail_on_event(self, event):
            heard.append(event["kind"])

    run = runs["r3-sender-restarts"]
    pm = get_plugin_manager(extra_plugins=[Listener()])
    result = backtest([POLICIES / "service-restarts.yaml"], region="r3", deployed_at=run.start,
                      until=run.start + 1800, sources=sim_sources(run), pm=pm)
    assert result.outcome == "fail" and heard == []
