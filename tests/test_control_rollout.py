"""Whole rollouts judged by a real Prometheus: ``compare: baseline`` relative criteria
and ``compare: control`` canary-vs-control statistics, end to end.

The Prometheus holds backfilled history (tests/data/prometheus/backfill.yaml): the bad
version's effects are incidents at fixed times, and each plan runs on a virtual clock
started just before them (``Guardrail.rollout(..., clock_start=...)``), with the
``noop`` deployer. The data cannot react to a rollback, so recovery is verified once
the backfilled incident ends, which the plans' ``verify_recovery`` allows for.
"""

from __future__ import annotations

import json

import pytest

from guardrail.api import Guardrail
from guardrail.errors import ExitCode

pytest_plugins = ["support.prometheus"]

MINUTE = 60.0

ERROR_LOG_POLICY = {
    "apiVersion": "guardrail/v1", "kind": "Policy", "name": "error-log", "interval": "30s",
    "checks": [{
        "name": "error-log-growth", "source": "prometheus",
        "query": 'clamp_min(sum(rate(error_log_writes_total{region="{{region}}"}[5m])), 1)',
        "compare": "baseline", "baseline": {"window": "30m", "stat": "median"}, "fail_if": "> +200%", "for": "1m",
    }],
}
DELIVERY_POLICY = {
    "apiVersion": "guardrail/v1", "kind": "Policy", "name": "delivery", "interval": "30s",
    "checks": [{
        "name": "delivery-vs-control", "source": "prometheus",
        "query": 'sum(rate(mail_delivered_total{region="{{region}}"}[1m]))',
        "compare": "control", "direction": "decrease", "effect_size": 0.9, "min_samples": 10,
    }],
}


def write_plan(tmp_path, url: str, policy: dict) -> str:
    (tmp_path / "policy.yaml").write_text(json.dumps(policy))
    plan = {
        "apiVersion": "guardrail/v1", "kind": "Rollout", "service": "mail-sender",
        "change": {"version": "2024.07.04", "previous": "2024.06.01"},
        "deploy": {"plugin": "noop"}, "sources": {"prometheus": {"url": url, "timeout": "5s"}},
        "regions": {"r3": {}, "r1": {}, "r2": {}},
        "waves": [{"name": "canary", "regions": ["r3"], "bake": "10m"},
                  {"name": "main", "regions": ["r1", "r2"], "parallel": True, "bake": "5m"}],
        "policies": ["policy.yaml"], "verify_recovery": {"for": "5m", "timeout": "45m"}, "clock": "virtual",
    }
    (tmp_path / "plan.yaml").write_text(json.dumps(plan))
    return str(tmp_path / "plan.yaml")


@pytest.fixture
def guardrail(tmp_path):
    g = Guardrail(tmp_path / "state.db")
    yield g
    g.close()


def rows(g: Guardrail, rollout_id: str, phase: str, check: str) -> list[dict]:
    return [r for r in g.store.measurements(rollout_id, phase) if r["check"] == check]


@pytest.mark.prometheus
def test_an_error_log_storm_fails_the_baseline_check_and_rolls_back(prometheus, guardrail, tmp_path):
    plan = write_plan(tmp_path, prometheus.url, ERROR_LOG_POLICY)
    result = guardrail.rollout(plan, clock_start=prometheus.start + 57 * MINUTE)  # the storm starts at +60m
    assert (result.outcome, result.exit_code) == ("rolled_back", ExitCode.ROLLED_BACK), result.reason
    baseline = guardrail.store.baselines(result.rollout_id)[("r3", "error-log", "error-log-growth")]
    assert baseline["value"] == pytest.approx(5.0, rel=0.05)  # the median write rate of the 30m before the change
    failed = [r for r in rows(guardrail, result.rollout_id, "bake:canary", "error-log-growth") if r["status"] == "fail"]
    assert len(failed) == 1 and failed[0]["region"] == "r3"
    first = failed[0]
    assert first["value"] > 3 * first["reference"] and first["threshold"] == pytest.approx(3 * first["reference"])
    assert "from baseline" in first["reason"] and first["reason"].endswith("held 1m")
    assert 62 * MINUTE < first["first_breach_at"] - prometheus.start < 64 * MINUTE
    assert first["at"] - first["first_breach_at"] == 60.0
    assert guardrail.store.steps(result.rollout_id, "deploy:r1") == []  # the main wave never started
    recovered = [r for r in guardrail.store.measurements(result.rollout_id, "recovery") if r["status"] == "pass"]
    assert recovered and recovered[-1]["at"] > prometheus.start + 80 * MINUTE  # after the storm ended


@pytest.mark.prometheus
def test_a_thirty_percent_delivery_drop_fails_the_control_comparison(prometheus, guardrail, tmp_path):
    plan = write_plan(tmp_path, prometheus.url, DELIVERY_POLICY)
    result = guardrail.rollout(plan, clock_start=prometheus.start + 88 * MINUTE)  # r3 drops 30% at +90m
    assert (result.outcome, result.exit_code) == ("rolled_back", ExitCode.ROLLED_BACK), result.reason
    canary = rows(guardrail, result.rollout_id, "bake:canary", "delivery-vs-control")
    filling = [r for r in canary if r["reason"].startswith("collecting samples")]
    assert [r["tick"] for r in filling] == list(range(9)) and all(r["pending"] for r in filling)
    assert filling[0]["reason"] == "collecting samples: 1 of 10 since the phase started"
    failed = canary[-1]
    assert failed["status"] == "fail" and failed["region"] == "r3"
    assert failed["reason"].startswith("significant decrease: deployed mean")
    evidence = failed["evidence"]
    assert evidence["controls"] == ["r1", "r2"] and evidence["p_value"] < 0.02 and evidence["ratio"] < 0.9
    assert evidence["deployed_samples"] >= 10 and evidence["control_samples"] == 2 * evidence["deployed_samples"]
    assert evidence["window"][0] == filling[0]["at"] and evidence["window"][1] == failed["at"]  # never before the bake
    assert failed["comparison"] == "control: decrease, confidence 0.98, effect 0.9"
    assert failed["value"] == pytest.approx(failed["reference"] * evidence["ratio"])
    assert 90 * MINUTE < failed["at"] - prometheus.start < 96 * MINUTE
    passes = [r for r in canary if r["status"] == "pass" and not r["pending"]]
    assert all(r["evidence"]["p_value"] is not None for r in passes)


@pytest.mark.prometheus
def test_a_healthy_change_is_promoted_and_the_last_wave_is_judged_against_the_baseline(prometheus, guardrail,
                                                                                       tmp_path):
    plan = write_plan(tmp_path, prometheus.url, DELIVERY_POLICY)
    result = guardrail.rollout(plan, clock_start=prometheus.start + 125 * MINUTE)  # after every incident
    assert (result.outcome, result.exit_code) == ("promoted", ExitCode.PROMOTED), result.reason
    canary = rows(guardrail, result.rollout_id, "bake:canary", "delivery-vs-control")
    judged = [r for r in canary if not r["pending"]]
    assert judged and all(r["status"] == "pass" and r["reason"].startswith("no significant decrease") for r in judged)
    main = rows(guardrail, result.rollout_id, "bake:main", "delivery-vs-control")
    assert {r["region"] for r in main} == {"r3", "r1", "r2"}
    judged = [r for r in main if not r["pending"]]
    assert {r["region"] for r in judged} == {"r3", "r1", "r2"}
    for row in judged:  # no region is left on the old version: each is compared with its own past
        assert row["status"] == "pass", row["reason"]
        assert row["reason"].endswith("against the region's own window before the change (on_no_control: baseline)")
        assert row["evidence"]["judged_against"] == \
            "the region's own window before the change (on_no_control: baseline)"
        assert row["evidence"]["controls"] == ["before the change"]
