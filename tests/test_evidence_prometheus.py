"""Freshness against a real Prometheus (promtool backfill) and a real VictoriaMetrics
(imported samples) holding the evidence scenario's history (r3 on version 2.0-gap:
every series stops for 10 minutes, 10 minutes after the deploy): the same stale
readings and the same decisions as on the simulated fleet, on both."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from guardrail.api import Guardrail
from guardrail.clock import VirtualClock
from guardrail.judging.evaluate import staleness
from guardrail.language.model import Check
from guardrail.plugin.interfaces import PluginContext, Probe
from guardrail_plugins.prometheus import PrometheusSource
from guardrail_plugins.sim import open_store
from guardrail_plugins.sim.fleet import FleetLog
from guardrail_plugins.sim.source import SimSource

DATA = Path(__file__).resolve().parent / "data" / "evidence"
MINUTE = 60.0
START = 1767607200.0
LATENCY = 'max(latency_seconds{region="r3"})'
RESTARTS = 'sum(increase(restarts_total{region="r3"}[15m]))'

pytestmark = pytest.mark.prometheus


class Backend:
    def __init__(self, name: str, server):
        self.name, self.server, self.url = name, server, server.url

    @property
    def settings(self) -> dict:
        """The source settings: VictoriaMetrics has no global scrape_interval to learn."""
        return {"url": self.url} | ({"scrape_interval": "15s"} if self.name == "victoria-metrics" else {})


@pytest.fixture(scope="module", params=["prometheus", "victoria-metrics"])
def server(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"evidence-{request.param}")
    log = FleetLog(base / "fleet.jsonl")
    log.record("r3", "2.0-gap", "deploy", "backfill", START)
    store = open_store(DATA / "scenario.yaml", fleet=log)
    if request.param == "prometheus":
        from support.prometheus import PrometheusServer, backfill

        backfill(store, START - store.scenario.history, START + 3 * 3600, base / "tsdb")
        with PrometheusServer(base, tsdb=base / "tsdb", global_interval="15s") as prometheus:
            yield Backend(request.param, prometheus)
    else:
        from support.victoria import VictoriaMetricsServer, load

        with VictoriaMetricsServer(base) as victoria:
            load(victoria, store, START - store.scenario.history, START + 3 * 3600)
            yield Backend(request.param, victoria)


@pytest.fixture
def sources(server, tmp_path):
    context = PluginContext(clock=VirtualClock(START), state_dir=tmp_path, base_dir=DATA, service="evidence")
    FleetLog(tmp_path / "sim-fleet-evidence.jsonl").record("r3", "2.0-gap", "deploy", "test", START)
    prom = PrometheusSource(PrometheusSource.Settings(**server.settings), context)
    sim = SimSource(SimSource.Settings(scenario="scenario.yaml"), context)
    yield prom, sim
    prom.close()


def check(query: str) -> Check:
    return Check.model_validate({"name": "c", "source": "prometheus", "query": query, "fail_if": "> 10"})


def test_the_source_learns_or_is_told_the_scrape_interval(sources):
    prom, _ = sources
    assert prom.scrape_interval() == 15.0  # learnt from Prometheus, told for VictoriaMetrics


def test_a_frozen_gauge_is_stale_after_its_bound(sources):
    prom, _ = sources
    late = START + 10 * MINUTE + 45
    reading = prom.measure(Probe("c", "r3", {"query": LATENCY}), late)
    assert reading.error is None and reading.series, "Prometheus serves the last sample for 5 minutes"
    assert reading.newest_sample == START + 9 * MINUTE + 45
    assert staleness(check(LATENCY), reading, late) == "stale: the newest sample is 1m old (max_age 30s)"
    fresh = START + 9 * MINUTE + 50
    assert staleness(check(LATENCY), prom.measure(Probe("c", "r3", {"query": LATENCY}), fresh), fresh) is None


def test_a_counter_window_over_a_gap_is_not_fresh_evidence(sources, server):
    prom, _ = sources
    after = START + 25 * MINUTE
    reading = prom.measure(Probe("c", "r3", {"query": RESTARTS}), after)
    assert reading.error is None and reading.series and reading.series[0].value == 0
    assert staleness(check(RESTARTS), reading, after) == \
        "stale: samples cover 37% of the query's window (min_window_coverage 50%)"


def test_every_reading_is_as_fresh_on_prometheus_as_on_the_sim(sources, server):
    """Prometheus counts a window's samples on [t - w, t], VictoriaMetrics on (t - w, t]:
    the reasons may differ by a sample, the decisions do not."""
    prom, sim = sources
    for query in (LATENCY, RESTARTS, 'sum(rate(restarts_total{region="r3"}[5m])) + max(latency_seconds)'):
        for offset in range(0, 40 * 60, 45):
            at = START + offset
            a, b = (source.measure(Probe("c", "r3", {"query": query}), at) for source in (prom, sim))
            assert bool(a.series) == bool(b.series), (query, offset)
            mine, theirs = staleness(check(query), a, at), staleness(check(query), b, at)
            if server.name == "prometheus":
                assert mine == theirs, (query, offset)
            else:
                assert (mine is None) == (theirs is None), (query, offset, mine, theirs)


def test_a_scalar_query_is_measured_with_its_companion_apart(sources, server):
    prom, _ = sources
    query = 'scalar(max(latency_seconds{region="r3"}))'
    late = START + 10 * MINUTE + 45
    reading = prom.measure(Probe("c", "r3", {"query": query}), late)
    # Prometheus refuses `scalar or vector`, so the companion is asked apart; VictoriaMetrics joins them.
    assert reading.series and (query in prom._separate) == (server.name == "prometheus")
    assert staleness(check(query), reading, late).startswith("stale: the newest sample is 1m old")


def _plan(directory: Path, sources: dict, deploy: dict) -> Path:
    shutil.copy(DATA / "scenario.yaml", directory / "scenario.yaml")
    policy = yaml.safe_load((DATA / "policy.yaml").read_text()) | {"inconclusive_limit": 1000}
    (directory / "policy.yaml").write_text(json.dumps(policy))
    plan = yaml.safe_load((DATA / "plan.yaml").read_text()) | {
        "change": {"version": "2.0-gap", "previous": "1.0"}, "sources": sources, "deploy": deploy,
        "waves": [{"name": "canary", "regions": ["r3"], "bake": "30m"}]}
    (directory / "plan.yaml").write_text(json.dumps(plan))
    return directory / "plan.yaml"


def test_a_gap_mid_bake_is_never_covered_and_decided_as_on_the_sim(server, tmp_path):
    runs = {}
    for name, sources, deploy in [
        ("prometheus", {"prometheus": server.settings}, {"plugin": "noop"}),
        ("sim", {"prometheus": {"plugin": "sim", "scenario": "scenario.yaml"}},
         {"plugin": "sim", "with": {"scenario": "scenario.yaml"}}),
    ]:
        (tmp_path / name).mkdir()
        g = Guardrail(tmp_path / name / "state.db")
        try:
            result = g.rollout(_plan(tmp_path / name, sources, deploy), clock_start=START)
            assert result.outcome == "promoted", result.reason
            rows = g.store.measurements(result.rollout_id, "bake:canary")
            runs[name] = ([(m["tick"], m["check"], m["status"], m["reason"]) for m in rows],
                          {(c["check"]): (c["covered"], c["uncovered"]) for c in g.store.coverage(result.rollout_id)},
                          g.store.events(result.rollout_id, "bake.passed")[0]["at"] - START)
        finally:
            g.close()
    ticks, coverage, passed = runs["prometheus"]
    assert coverage["latency"][1] >= 10 * MINUTE - 30 and coverage["restarts"][1] >= 15 * MINUTE
    assert passed >= 30 * MINUTE + coverage["restarts"][1]
    assert not [t for t in ticks if START + 10 * MINUTE + 30 <= START + t[0] * 30 < START + 20 * MINUTE
                and t[2] == "pass"], "a tick of the gap passed"
    statuses = lambda run: [(t, c, s) for t, c, s, _ in run[0]]
    assert statuses(runs["prometheus"]) == statuses(runs["sim"])
    assert runs["prometheus"][1:] == runs["sim"][1:]
