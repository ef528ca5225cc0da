"""``guardrail check`` (``guardrail.tools.check``) and ``guardrail validate --live``
against the real Prometheus, backfilled from tests/data/prometheus/backfill.yaml."""

from __future__ import annotations

import json
import socket

import pytest

from guardrail.tools.check import check_now, exit_code
from guardrail.errors import ConfigError, UsageError

pytest_plugins = ["support.prometheus"]

MINUTE = 60.0
POLICY = """\
apiVersion: guardrail/v1
kind: Policy
name: mail
interval: 30s
checks:
  - name: db-cpu-saturation
    source: prometheus
    query: max(db_cpu_utilization_ratio{region="{{region}}"})
    fail_if: "> 0.9"
    for: 2m
  - name: queue-depth
    source: prometheus
    query: avg(mail_queue_depth{region="{{queue_region}}"})
    fail_if: "> 1000"
  - name: error-log-growth
    source: prometheus
    query: sum(rate(error_log_writes_total{region="{{region}}"}[5m]))
    compare: baseline
    baseline: {window: 30m}
    fail_if: "> +200%"
  - name: delivery-vs-control
    source: prometheus
    query: sum(rate(mail_delivered_total{region="{{region}}"}[1m]))
    compare: control
    direction: decrease
"""


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "mail.yaml"
    path.write_text(POLICY.replace("{{queue_region}}", "{{region}}"))
    return path


def plan_for(tmp_path, url: str, policy_name: str = "mail.yaml") -> str:
    plan = {"apiVersion": "guardrail/v1", "kind": "Rollout", "service": "mail-sender",
            "change": {"version": "2", "previous": "1"}, "deploy": {"plugin": "noop"},
            "sources": {"prometheus": {"url": url}}, "vars": {"queue_region": "r1"},
            "regions": {"r3": {"vars": {"queue_region": "r3"}}, "r1": {}, "r2": {}},
            "waves": [{"name": "canary", "regions": ["r3"], "bake": "10m"},
                      {"name": "main", "regions": ["r1", "r2"], "bake": "10m"}], "policies": [policy_name]}
    (tmp_path / "plan.yaml").write_text(json.dumps(plan))
    return str(tmp_path / "plan.yaml")


def by_check(results):
    return {r.check: r for r in results}


# --- the library -------------------------------------------------------------------------


@pytest.mark.prometheus
def test_every_check_is_evaluated_once_with_value_threshold_verdict_and_reason(prometheus, policy, registry):
    at = prometheus.start + 50 * MINUTE  # r1's database is saturated
    results = by_check(check_now(policy, "r1", registry, prometheus_url=prometheus.url, at=at))
    cpu = results["db-cpu-saturation"]
    assert (cpu.status, cpu.value, cpu.threshold) == ("fail", 1.0, 0.9)
    assert cpu.reason == "1 (fails if > 0.9); holds now (a bake fails once it holds for 2m)"
    assert cpu.query == 'max(db_cpu_utilization_ratio{region="r1"})' and cpu.source == "prometheus"
    depth = results["queue-depth"]
    assert depth.status == "pass" and 300 < depth.value < 500 and depth.threshold == 1000
    growth = results["error-log-growth"]
    assert growth.status == "pass" and growth.reference == pytest.approx(5.0, rel=0.1)
    assert growth.detail["baseline_samples"] == 61 and "from baseline" in growth.reason
    control = results["delivery-vs-control"]
    assert control.status == "pass" and control.skipped and control.reason.startswith("skipped: no control region")
    assert exit_code(list(results.values())) == 1


@pytest.mark.prometheus
def test_a_plan_gives_sources_variables_and_control_regions(prometheus, tmp_path, registry):
    (tmp_path / "mail.yaml").write_text(POLICY)
    plan = plan_for(tmp_path, prometheus.url)
    at = prometheus.start + 100 * MINUTE  # r3 delivers 30% less than r1 and r2
    results = by_check(check_now(tmp_path / "mail.yaml", "r3", registry, plan_path=plan, at=at))
    assert results["queue-depth"].query == 'avg(mail_queue_depth{region="r3"})'  # the region's own variable
    control = results["delivery-vs-control"]
    assert control.status == "fail" and control.detail["controls"] == ["r1", "r2"]
    assert control.detail["deployed_samples"] == 11 and control.detail["control_samples"] == 22
    assert control.reason.startswith("significant decrease") and control.detail["ratio"] < 0.8
    others = by_check(check_now(tmp_path / "mail.yaml", "r3", registry, plan_path=plan, at=at,
                                variables={"queue_region": 'no"where'}))
    assert others["queue-depth"].query == 'avg(mail_queue_depth{region="no\\"where"})'  # --var wins, escaped
    assert (others["queue-depth"].status, others["queue-depth"].reason) == ("inconclusive", "no data")
    assert exit_code(list(others.values())) == 1  # the control check fails: 1 wins over 3
    with pytest.raises(UsageError, match="region 'r9' is not in"):
        check_now(tmp_path / "mail.yaml", "r9", registry, plan_path=plan)


def test_bad_input_is_a_usage_or_config_error(tmp_path, policy, registry):
    with pytest.raises(UsageError, match="asks Prometheus: pass --prometheus URL, or --plan PLAN"):
        check_now(policy, "r1", registry)
    (tmp_path / "bad.yaml").write_text(POLICY.replace("fail_if: \"> 0.9\"", "fial_if: \"> 0.9\""))
    with pytest.raises(ConfigError, match="unknown key 'fial_if'"):
        check_now(tmp_path / "bad.yaml", "r1", registry, prometheus_url="http://127.0.0.1:9")
    (tmp_path / "undefined.yaml").write_text(POLICY)
    with pytest.raises(ConfigError, match=r"template variable \{\{queue_region\}\} is not defined for region\(s\) r1"):
        check_now(tmp_path / "undefined.yaml", "r1", registry, prometheus_url="http://127.0.0.1:9")


# --- the command line ----------------------------------------------------------------------


@pytest.mark.prometheus
def test_cli_table_and_exit_code_one_when_a_check_fails(cli, prometheus, policy):
    result = cli("check", str(policy), "--region", "r1", "--prometheus", prometheus.url,
                 "--at", "2024-07-04T09:50:00Z")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].strip() == "mail in r1"
    assert lines[1].split() == ["check", "value", "threshold", "verdict", "reason"]
    cpu = next(line for line in lines if "db-cpu-saturation" in line)
    assert cpu.split()[1:4] == ["1", "0.9", "fail"]
    assert "skipped" in next(line for line in lines if "delivery-vs-control" in line)


@pytest.mark.prometheus
def test_cli_json_and_exit_codes_zero_and_three(cli, prometheus, policy, tmp_path, refused_port):
    healthy = cli("check", str(policy), "--region", "r2", "--prometheus", prometheus.url, "--at",
                  str(prometheus.start + 150 * MINUTE), "--json")
    assert healthy.exit_code == 0, healthy.output
    answer = json.loads(healthy.output)["checks"]
    assert [r["check"] for r in answer] == ["db-cpu-saturation", "queue-depth", "error-log-growth", "delivery-vs-control"]
    assert {r["status"] for r in answer} == {"pass"} and answer[0]["region"] == "r2"
    assert set(answer[0]) >= {"value", "threshold", "reference", "reason", "query", "pending", "skipped"}
    down = f"http://127.0.0.1:{refused_port}"
    unreachable = cli("check", str(policy), "--region", "r2", "--prometheus", down, "--json")
    assert unreachable.exit_code == 3, unreachable.output
    reasons = [r["reason"] for r in json.loads(unreachable.output)["checks"] if r["status"] == "inconclusive"]
    assert len(reasons) == 3 and all(f"prometheus {down}: query " in r for r in reasons)
    assert reasons[2].startswith("baseline window: prometheus")
    assert "cannot connect (Connection refused)" in reasons[0]


def test_cli_bad_input_exits_two(cli, policy):
    missing = cli("check", str(policy), "--region", "r1")
    assert missing.exit_code == 2 and "pass --prometheus URL" in missing.output
    assert cli("check", str(policy), "--region", "r1", "--prometheus", "http://x", "--at", "soon").exit_code == 2
    assert cli("check", str(policy), "--region", "r1", "--prometheus", "http://x", "--var", "oops").exit_code == 2
    assert cli("check", "no/such/policy.yaml", "--region", "r1", "--prometheus", "http://x").exit_code == 2


@pytest.fixture
def refused_port():
    """A port that refuses connections: bound but never listening, and held for the whole
    test so that no other process (a Prometheus started on port 0...) can take it meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


# --- validate --live -----------------------------------------------------------------------


@pytest.mark.prometheus
def test_validate_live_reports_a_query_prometheus_rejects_where_it_is_written(cli, prometheus, tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(POLICY.replace("{{queue_region}}", "{{region}}").replace(
        'avg(mail_queue_depth{region="{{region}}"})', 'avg(mail_queue_depth{region=~"{{region}}**"})'))
    # Offline the parser's regex takes `x**`; only Prometheus's RE2 refuses it.
    assert cli("validate", str(path)).exit_code == 0
    result = cli("validate", "--live", "--prometheus", prometheus.url, str(path))
    assert result.exit_code == 2, result.output
    assert (f"{path}:13:12: checks[1].query: Prometheus rejects the query: 1:22: parse error: error parsing regexp:"
            " invalid nested repetition operator: `**`") in result.output
    assert "1 problem found" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(POLICY.replace("{{queue_region}}", "{{region}}"))
    ok = cli("validate", "--live", "--prometheus", prometheus.url, str(good))
    assert ok.exit_code == 0 and "ok: 1 file valid" in ok.output


@pytest.mark.prometheus
def test_validate_live_uses_the_plan_prometheus_and_variables(cli, prometheus, tmp_path, refused_port):
    (tmp_path / "mail.yaml").write_text(POLICY.replace(
        'error_log_writes_total{region="{{region}}"}', 'error_log_writes_total{region=~"{{region}}**"}'))
    plan = plan_for(tmp_path, prometheus.url)
    result = cli("validate", "--live", plan)
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'mail.yaml'}:17:12: checks[2].query: Prometheus rejects the query:" in result.output
    bare = cli("validate", "--live", str(tmp_path / "mail.yaml"))
    assert bare.exit_code == 2 and "has prometheus checks: pass --prometheus URL" in bare.output
    down = cli("validate", "--live", "--prometheus", f"http://127.0.0.1:{refused_port}", str(tmp_path / "mail.yaml"))
    assert down.exit_code == 2 and "validate --live: cannot ask: prometheus http://127.0.0.1:" in down.output
