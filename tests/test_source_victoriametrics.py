"""``victoriametrics`` source: MetricsQL, which no PromQL parser accepts, is left to the
server offline and asked of a real VictoriaMetrics live."""

from __future__ import annotations

import pytest

from guardrail.clock import SystemClock
from guardrail.plugin.interfaces import PluginContext
from guardrail_plugins.victoriametrics import VictoriaMetricsSource

METRICSQL = 'sum(rate(mail_sent_total{region="{{region}}"}))'
"""``rate`` without a window: MetricsQL takes the step as the window; PromQL refuses it."""


def policy(tmp_path, source: str):
    path = tmp_path / f"{source}.yaml"
    path.write_text("apiVersion: guardrail/v1\nkind: Policy\nname: sent\nchecks:\n"
                    f"  - name: sent\n    source: {source}\n    query: {METRICSQL}\n    fail_if: \"< 1\"\n")
    return path


def test_metricsql_is_valid_for_victoriametrics_and_located_for_prometheus(tmp_path, cli):
    assert cli("validate", str(policy(tmp_path, "victoriametrics"))).exit_code == 0
    refused = cli("validate", str(policy(tmp_path, "prometheus")))
    assert refused.exit_code == 2, refused.output
    assert (f"{tmp_path / 'prometheus.yaml'}:7:12: checks[0].query: invalid PromQL: expected type matrix in call to"
            " function 'rate', got vector") in refused.output


def test_victoriametrics_checks_template_placement_as_prometheus_does(tmp_path, cli):
    path = tmp_path / "bare.yaml"
    path.write_text(policy(tmp_path, "victoriametrics").read_text().replace('"{{region}}"', "{{region}}"))
    result = cli("validate", str(path))
    assert result.exit_code == 2 and "{{region}} must sit inside a double-quoted string" in result.output


def test_a_real_victoriametrics_parses_metricsql_and_refuses_nonsense(tmp_path):
    from support.victoria import VictoriaMetricsServer

    with VictoriaMetricsServer(tmp_path / "vm") as server:
        source = VictoriaMetricsSource(VictoriaMetricsSource.Settings(url=server.url),
                                       PluginContext(clock=SystemClock(), state_dir=tmp_path))
        try:
            assert source.parse_error(METRICSQL.replace("{{region}}", "r1")) is None
            error = source.parse_error("sum(rate(x[5m)")
            assert error is not None and "unsupported path" not in error and "sum(rate(x[5m)" in error, error
        finally:
            source.close()
