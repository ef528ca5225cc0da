"""The scenario library (``examples/scenarios/``): each seed incident faithful to its
report and caught in the canary region, each healthy-but-noisy scenario promoted, and
every scenario exported as OpenMetrics for a backfill."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from support import scenario_library

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "examples" / "scenarios"
MINUTE = 60.0


lib = scenario_library.load()
NAMES = lib.names()
FAILURES = [n for n in NAMES if not lib.healthy(n) and not lib.gap(n)]
HEALTHY = [n for n in NAMES if lib.healthy(n)]
GAPS = [n for n in NAMES if lib.gap(n)]

# (deciding check, onset after the deploy) per seed scenario, from each scenario's header
SEEDS = {
    "r3-sender-restarts": ("mail-process-restarts", 5 * MINUTE),
    "dualog-db-cpu": ("db-cpu-saturation", 15 * MINUTE),
    "duocircle-port25": ("smtp-banner-probes", 5 * MINUTE),
    "opensrs-processing-loop": ("mail-queue-latency-p95", 2 * MINUTE),
    "danaconnect-error-log-storm": ("error-log-write-growth", 5 * MINUTE),
}
# (deciding check, region, wave that caught it, onset after the first deploy) per class beyond the seeds
LATER = {
    "second-wave-regression": ("mail-process-restarts", "r1", "main", 35 * MINUTE),
    "late-canary-failure": ("mail-process-restarts", "r3", "main", 45 * MINUTE),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {name: lib.run(name, workdir=tmp_path_factory.mktemp(name)) for name in NAMES}


def test_one_scenario_per_seed_and_the_healthy_noise():
    assert set(FAILURES) == set(SEEDS) | set(LATER)
    assert set(HEALTHY) == {"healthy-diurnal", "healthy-daily-restart", "healthy-scrape-gaps", "healthy-short-spikes",
                            "healthy-load-peak"}
    assert GAPS == ["gap-every-series"]
    assert set(lib.REPLAY_AT) == set(NAMES)
    for name in NAMES:
        assert (SCENARIOS / name / "rollout.yaml").is_file()


def test_the_library_validates(cli):
    result = cli("validate", "examples/scenarios", "policies/")
    assert result.exit_code == 0, result.output


def test_every_plan_bakes_the_history_based_policy_library():
    library = sorted(p.name for p in (REPO / "policies").glob("*.yaml") if p.name != "smtp-reachability.yaml")
    singles = {"service-restarts.yaml", "queue-latency.yaml"}  # repeated inside mail-delivery.yaml
    for name in NAMES:
        plan = yaml.safe_load((SCENARIOS / name / "rollout.yaml").read_text())
        used = sorted(Path(p).name for p in plan["policies"])
        if name == "healthy-load-peak":  # queue latency judged against the control regions instead
            assert used == sorted(set(library) - singles - {"mail-delivery.yaml"}
                                  | {"service-restarts.yaml", "latency-vs-control.yaml"}), name
            continue
        assert used == sorted(set(library) - singles), name
        assert [w["regions"] for w in plan["waves"]] == [["r3"], ["r1", "r2"]], name
        assert plan["clock"] == "virtual"


def test_every_scenario_serves_the_whole_metric_contract():
    readme = (REPO / "policies" / "README.md").read_text()
    contract = readme[readme.index("## The metric contract"):readme.index("Plan variables")]
    documented = set(re.findall(r"^\| `([a-zA-Z0-9_:]+)` \|", contract, flags=re.M))
    for name in NAMES:
        scenario = yaml.safe_load((SCENARIOS / name / "scenario.yaml").read_text())
        assert documented <= set(scenario["metrics"]), name


@pytest.mark.parametrize("name", sorted(LATER))
def test_a_failure_the_canary_bake_cannot_see_is_caught_while_the_main_wave_bakes(runs, name):
    run = runs[name]
    check, region, wave, onset = LATER[name]
    assert run.outcome == "rolled_back", run.reason
    assert [(f["check"], f["region"], f["phase"]) for f in run.findings][:1] == [(check, region, f"bake:{wave}")]
    assert run.start + onset < run.decided_at < run.start + onset + 5 * MINUTE
    assert set(run.exposure) == {"r3", "r1", "r2"}, "the main wave was deployed, then rolled back"


@pytest.mark.parametrize("name", GAPS)
def test_a_gap_of_every_series_is_neither_promoted_nor_rolled_back(runs, name):
    assert runs[name].outcome == "halted", runs[name].reason
    assert runs[name].reason.startswith("no evidence: r3/")


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_each_seed_failure_is_caught_in_the_canary_before_it_spreads(runs, name):
    run = runs[name]
    check, onset = SEEDS[name]
    assert run.outcome == ("rollback_failed" if name == "opensrs-processing-loop" else "rolled_back"), run.reason
    assert [f["check"] for f in run.findings][:1] == [check]
    assert {f["region"] for f in run.findings} == {"r3"} and run.findings[0]["wave"] == "canary"
    assert set(run.exposure) == {"r3"}, "the change spread past the canary"
    assert run.start + onset < run.decided_at < run.start + onset + 10 * MINUTE
    [(deployed, rolled_back)] = run.exposure["r3"]
    assert deployed == run.start and rolled_back == run.decided_at


@pytest.mark.parametrize("name", HEALTHY)
def test_each_healthy_scenario_is_promoted(runs, name):
    run = runs[name]
    assert run.outcome == "promoted", run.reason
    assert set(run.exposure) == {"r3", "r1", "r2"}


def test_the_r3_seed_restarts_every_seven_minutes_from_17_15(runs):
    from guardrail_plugins.sim import evaluate

    run = runs["r3-sender-restarts"]
    assert lib.iso(run.start) == "2023-01-05T17:10:00Z"
    store = lib.store_of(run, before=run.decided_at)  # as if it had stayed: the report's evening
    query = 'sum(increase(service_restarts_total{region="r3"}[1h]))'
    restarts = evaluate(query, store, run.start + 65 * MINUTE)[0][1]
    assert 14 <= restarts <= 20  # 2 senders, ~8 restarts each in the hour from 17:15


def test_the_dualog_backlog_drains_slowly_after_the_rollback(runs):
    from guardrail_plugins.sim import evaluate

    run = runs["dualog-db-cpu"]
    store = lib.store_of(run)
    depth = lambda at: evaluate('sum(mail_queue_depth{region="r3"})', store, at)[0][1]  # noqa: E731
    cpu = lambda at: evaluate('max(db_cpu_utilization_ratio{region="r3"})', store, at)[0][1]  # noqa: E731
    after = run.decided_at + 60
    assert cpu(run.decided_at - 30) == 1.0 and cpu(after) < 0.6
    assert depth(after) > 1500 > depth(after + 45 * MINUTE) > 1000 > depth(after + 95 * MINUTE)


def test_the_opensrs_loop_relapses_1h41m_after_the_revert(runs):
    """verify_recovery (2h, the policy's advice) sees the loop come back instead of
    calling the incident resolved, and a person is called."""
    run = runs["opensrs-processing-loop"]
    assert 101 * MINUTE < run.relapsed_at - run.decided_at < 106 * MINUTE
    assert run.outcome == "rollback_failed" and "recovery not achieved" in run.reason


def test_a_run_exports_openmetrics_for_a_backfill(runs, tmp_path):
    run = runs["duocircle-port25"]
    out = tmp_path / "duocircle.om"
    count = lib.export(run, out, end=run.start + 3600)
    text = out.read_text()
    assert count > 50_000 and text.endswith("# EOF\n")
    assert "# TYPE service_restarts counter" in text and "# TYPE probe_success gauge" in text
    first = next(line for line in text.splitlines() if line.startswith("probe_success{"))
    assert float(first.rsplit(" ", 1)[1]) == run.start - 6 * 3600  # the history's first sample, in seconds


def test_the_runner_script(tmp_path, capsys):
    assert lib.main(["duocircle-port25", "--workdir", str(tmp_path), "--openmetrics", str(tmp_path / "x.om"),
                     "--hours", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "duocircle-port25: rolled_back at 2021-01-25T11:02:" in out
    assert "r3/smtp-probes/smtp-banner-probes" in out and "samples to" in out
