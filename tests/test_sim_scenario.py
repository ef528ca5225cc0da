"""Scenarios: the YAML model, the generated samples and the fleet timeline they follow."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from guardrail.errors import ConfigError
from guardrail.language.loader import validate_paths
from guardrail.plugin.manager import get_plugin_manager
from guardrail_plugins.sim import FleetLog, evaluate, load_scenario, open_store
from guardrail_plugins.sim.scenario import Scenario

SCENARIOS = Path(__file__).parent / "data" / "scenarios"
EVERY = SCENARIOS / "every-effect.yaml"
QUICKSTART = SCENARIOS / "r3-sender-restarts.yaml"
START = load_scenario(EVERY).start_epoch  # 2024-11-05T18:00:00Z


def store_for(path=EVERY, fleet=None, **kwargs):
    return open_store(load_scenario(path), fleet=fleet, start=kwargs.pop("start", START), **kwargs)


def series(store, name, until=START + 3600, **labels):
    index = next(i for i, s in enumerate(store.specs)
                 if s.metric == name and all(s.labels.get(k) == v for k, v in labels.items()))
    data = store.series(index, until)
    return np.array(data.ts) / 1000.0, np.array(data.vals)


# --- the YAML model ----------------------------------------------------------------


def test_the_example_scenarios_validate_through_the_plugin_registry():
    registry = get_plugin_manager().registry
    checked, problems = validate_paths([SCENARIOS], registry)
    assert checked >= 2 and problems == []
    quickstart = load_scenario(QUICKSTART)
    assert quickstart.regions == ["r3", "r1", "r2"] and quickstart.service == "mail-sender"
    assert set(quickstart.metrics) >= {"service_restarts_total", "mail_queue_latency_p95_seconds", "mail_sends_stalled",
                                       "db_cpu_utilization_ratio", "error_log_writes_total", "mail_delivered_total",
                                       "probe_success"}


def write(tmp_path, text):
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


HEAD = """apiVersion: guardrail/v1
kind: Scenario
regions: [r1, r2]
baseline_version: "1"
metrics:
  restarts_total: {type: counter}
  up: {type: gauge, value: 1, instances: 2}
"""


def problems_of(path):
    with pytest.raises(ConfigError) as error:
        load_scenario(path)
    return [str(p) for p in error.value.problems]


def test_problems_are_located_and_say_what_is_wrong(tmp_path):
    path = write(tmp_path, HEAD + """versions:
  "2":
    effects:
      - {metric: restart_total, every: 5m, add: 1}
      - {metric: up, regions: [r9], instances: [3], set: 0}
      - {metric: up, reset: true}
""")
    found = problems_of(path)
    assert any(f"{path.name}:11:18: versions.2.effects[0].metric: unknown metric 'restart_total'" in p
               and "did you mean 'restarts_total'" in p for p in found), found
    assert any("versions.2.effects[1].regions[0]: unknown region 'r9'" in p for p in found)
    assert any("versions.2.effects[1].instances[0]: up has 2 instances; 3 is out of range" in p for p in found)
    assert any("versions.2.effects[2].reset: reset applies to counters" in p for p in found)


@pytest.mark.parametrize("extra, words", [
    ("incidents: [{metric: up, add: 1, set: 2}]", "exactly one of add, set, scale, bump, gap, reset (got add, set)"),
    ("incidents: [{metric: up}]", "exactly one of add, set, scale, bump, gap, reset (got none)"),
    ("incidents: [{metric: up, lasting: 1m, add: 1}]", "need every"),
    ("incidents: [{metric: up, every: 1m, lasting: 50s, jitter: 20s, add: 1}]", "events do not overlap"),
    ("incidents: [{metric: up, every: 1m, ramp: 1m, add: 1}]", "ramp: cannot be combined"),
    ("incidents: [{metric: up, add: 1, fro: 5m}]", "unknown key 'fro' (did you mean 'for'?)"),
    ("step: 1.5ms", "whole number of milliseconds"),
    ("step: fast", "expected a duration"),
])
def test_invalid_effects_and_settings(tmp_path, extra, words):
    found = problems_of(write(tmp_path, HEAD + extra + "\n"))
    assert any(words in p for p in found), found


def test_metric_names_follow_prometheus_conventions(tmp_path):
    found = problems_of(write(tmp_path, HEAD.replace("restarts_total: {type: counter}", "restarts: {type: counter}")))
    assert any("counter 'restarts' must be named restarts_total" in p for p in found), found
    found = problems_of(write(tmp_path, HEAD.replace("up: {type: gauge", "up_total: {type: gauge")))
    assert any("must not end in _total" in p for p in found), found
    found = problems_of(write(tmp_path, HEAD.replace("{type: counter}", "{type: counter, labels: {region: x}}")))
    assert any("label 'region' is added by the simulator" in p for p in found), found


def test_shorthands():
    scenario = Scenario.model_validate({
        "apiVersion": "guardrail/v1", "kind": "Scenario", "regions": ["a"], "baseline_version": "1",
        "start": "2023-01-05T17:15:00", "metrics": {"x": {"type": "gauge", "diurnal": 0.2}}})
    assert scenario.metrics["x"].diurnal.amplitude == 0.2 and scenario.metrics["x"].diurnal.period == 86400
    assert scenario.start_epoch == 1672938900.0  # no zone means UTC
    assert scenario.step == 15 and scenario.history == 6 * 3600


# --- generated samples -------------------------------------------------------------


def test_samples_are_a_pure_function_of_scenario_seed_timeline_and_time(tmp_path):
    one, two = store_for(), store_for()
    t1, v1 = series(one, "requests_total", instance="r1-2")
    # the second store is first asked about a far-away time, so its arrays are longer
    evaluate("requests_total", two, START + 86400)
    t2, v2 = series(two, "requests_total", instance="r1-2")
    assert np.array_equal(t1, t2[: len(t1)]) and np.array_equal(v1, v2[: len(v1)])
    _, other = series(store_for(seed=7), "requests_total", instance="r1-2")
    assert not np.array_equal(v1, other[: len(v1)])
    query = "sum(rate(requests_total[5m]))"
    assert evaluate(query, one, START + 1234) == evaluate(query, two, START + 1234)


def test_the_grid_starts_with_history_and_is_aligned_to_the_step():
    t, v = series(store_for(), "queue_depth", region="r2")
    assert t[0] == START - 7200 and np.all(np.diff(t) == 15)
    assert v.min() >= 0  # min: 0 clamps the noise
    assert 9 < v.mean() < 11 and 1.5 < v.std() < 2.5  # value 10, noise 2


def test_counters_are_cumulative_and_monotonic_without_resets():
    t, v = series(store_for(), "requests_total", instance="r2-1")
    assert v[0] == 0 and np.all(np.diff(v) >= 0)
    assert 40 < v[-1] / (t[-1] - t[0]) < 60  # ~50/s on average over whole diurnal periods


def test_periodic_resets_restart_the_counter_only_while_the_version_runs(tmp_path):
    fleet = FleetLog(tmp_path / "fleet.jsonl")
    fleet.record("r1", "2.0", "deploy", "k1", START + 300)
    fleet.record("r1", "1.0", "rollback", "k2", START + 2700)
    t, v = series(store_for(fleet=fleet), "requests_total", instance="r1-3")
    drops = t[1:][np.diff(v) < 0]
    assert len(drops) == 8  # first restart at 5m + 2m, then every 5m until the rollback at 45m
    assert drops[0] >= START + 420 and drops[-1] < START + 2700
    assert np.all(np.diff(drops) > 5 * 60 - 40) and np.all(np.diff(drops) < 5 * 60 + 40)  # jitter 40s


def test_periodic_events_on_different_metrics_coincide(tmp_path):
    fleet = FleetLog(tmp_path / "fleet.jsonl")
    fleet.record("r1", "2.0", "deploy", "k1", START + 300)
    store = store_for(fleet=fleet)
    t, restarts = series(store, "restarts_total", region="r1")
    t2, requests = series(store, "requests_total", instance="r1-1")
    assert list(t[1:][np.diff(restarts) > 0]) == list(t2[1:][np.diff(requests) < 0])
    assert set(np.diff(restarts)) <= {0.0, 1.0}  # add: 1 = one restart per event


def test_ramp_step_scale_and_instances():
    store = store_for()
    t, cpu = series(store, "cpu_ratio", region="r2")
    at = lambda minutes: cpu[np.searchsorted(t, START + minutes * 60)]  # noqa: E731
    assert at(9) < 0.45 and 0.5 < at(12.5) < 0.8 and at(16) == 0.97 and at(29.75) == 0.97 and at(31) < 0.45
    _, cpu_r1 = series(store, "cpu_ratio", region="r1")
    assert cpu_r1[np.searchsorted(t, START + 16 * 60)] < 0.45  # regions: [r2] only
    t, fast = series(store, "requests_total", instance="r1-1")
    _, slow = series(store, "requests_total", instance="r1-2")
    window = (t >= START + 26 * 60) & (t <= START + 34 * 60)
    assert np.diff(fast[window]).sum() > 2.2 * np.diff(slow[window]).sum()  # scale: 3 on instance 1


def test_gaps_have_no_samples_and_queries_see_no_data_after_the_lookback():
    store = store_for()
    t, _ = series(store, "queue_depth", region="r1")
    assert not np.any((t >= START + 20 * 60) & (t < START + 27 * 60))
    query = 'queue_depth{region="r1"}'
    assert evaluate(query, store, START + 24 * 60)  # the last sample is still within 5m
    assert evaluate(query, store, START + 25 * 60 + 1) == []
    assert evaluate(query, store, START + 27 * 60)
    t, v = series(store, "requests_total", instance="r2-1")  # a counter keeps counting in a gap
    before, after = v[t < START + 30 * 60][-1], v[t >= START + 34 * 60][0]
    assert (after - before) / (4 * 60 + 15) > 30


def test_diurnal_sine_peaks_where_asked():
    scenario = load_scenario(EVERY).model_copy(deep=True)
    scenario.metrics["cpu_ratio"].noise = 0
    scenario.incidents = []
    store = open_store(scenario, start=START)
    t, cpu = series(store, "cpu_ratio", region="r1", until=START + 86400)
    peak = t[np.argmax(np.where(t >= START, cpu, 0))] % 86400
    assert abs(peak - 15 * 3600) <= 15 and cpu.max() == pytest.approx(0.33)


# --- the fleet timeline ------------------------------------------------------------


def test_store_follows_the_fleet_log_as_it_grows(tmp_path):
    fleet = FleetLog(tmp_path / "fleet.jsonl")
    store = store_for(fleet=fleet)
    query = 'sum(increase(restarts_total{region="r1"}[15m]))'
    assert evaluate(query, store, START + 1800) == [({}, 0.0)]
    assert store.versions() == {"r1": "1.0", "r2": "1.0"}
    FleetLog(tmp_path / "fleet.jsonl").record("r1", "2.0", "deploy", "k1", START + 300)  # another writer
    assert evaluate(query, store, START + 1800)[0][1] >= 2
    assert store.versions() == {"r1": "2.0", "r2": "1.0"}


def test_fleet_log_lines_and_the_pinned_start(tmp_path):
    path = tmp_path / "state" / "fleet.jsonl"
    fleet = FleetLog(path)
    assert fleet.start() is None and fleet.ensure_start(100.0) == 100.0
    assert FleetLog(path).ensure_start(999.0) == 100.0  # first writer wins
    assert fleet.record("r1", "2", "deploy", "key-1", 150.0) is True
    assert fleet.record("r1", "2", "deploy", "key-1", 160.0) is False  # same key: nothing written
    with open(path, "a") as fh:
        fh.write('{"at": 170, "region": "r1", "vers')  # a write cut short by a crash
    fleet.refresh()
    assert fleet.timeline("r1") == [(150.0, "2")] and fleet.version("r1", "1") == "2"
    lines = [json.loads(line) for line in path.read_text().splitlines()[:2]]
    assert lines[1] == {"at": 150.0, "region": "r1", "version": "2", "action": "deploy", "key": "key-1"}


def test_a_redeploy_of_the_running_version_does_not_restart_its_effects(tmp_path):
    fleet = FleetLog(tmp_path / "fleet.jsonl")
    fleet.record("r1", "2.0", "deploy", "k1", START + 300)
    first = series(store_for(fleet=fleet), "restarts_total", region="r1")[1]
    fleet.record("r1", "2.0", "deploy", "k2", START + 1000)
    assert np.array_equal(first, series(store_for(fleet=fleet), "restarts_total", region="r1")[1])


def test_a_start_years_before_the_query_is_refused_clearly():
    store = store_for()
    with pytest.raises(ValueError, match="later start"):
        evaluate("queue_depth", store, START + 3 * 365 * 86400)
    assert evaluate("queue_depth", store, START + 20 * 86400)  # weeks are fine


def test_the_format_example_in_the_module_docstring_is_valid():
    import textwrap

    import yaml

    from guardrail_plugins.sim import scenario as module
    from guardrail_plugins.sim.scenario import check_scenario

    block = module.__doc__.split("::\n", 1)[1].split("\nMetrics\n", 1)[0]
    example = Scenario.model_validate(yaml.safe_load(textwrap.dedent(block)))
    assert check_scenario(example).versions["2023.01.05"].effects[1].lasting == 120



INSTANT = """apiVersion: guardrail/v1
kind: Scenario
regions: [r1]
baseline_version: "1"
step: 15s
history: 1h
start: 2024-11-05T18:00:00Z
metrics:
  level: {type: gauge, value: 0}
  rate_total: {type: counter, value: 1}
  events_total: {type: counter}
  restarted_total: {type: counter, value: 1}
versions:
  "2":
    effects:
      - {metric: level, set: 7}
      - {metric: rate_total, add: 9}
      - {metric: events_total, every: 5m, add: 1}
      - {metric: restarted_total, every: 5m, reset: true}
"""


def test_a_fleet_change_applies_strictly_after_its_instant(tmp_path):
    """The sample at the grid time of a deploy or a rollback was scraped before it: it
    keeps the version that ran until then, and is the same whether it was asked for
    before or after the change was logged. The change shows from the next sample on
    (a counter's new rate counts from the instant of the change)."""
    fleet = FleetLog(tmp_path / "fleet.jsonl")
    store = open_store(load_scenario(write(tmp_path, INSTANT)), fleet=fleet)
    names = ["level", "rate_total", "events_total", "restarted_total"]
    deploy, rollback = START + 300, START + 900  # both on the 15s grid

    def at(t):
        return {name: evaluate(name, store, t)[0][1] for name in names}

    scraped = at(deploy)
    fleet.record("r1", "2", "deploy", "k1", deploy)
    assert at(deploy) == scraped  # already scraped under "1"
    before, after = at(deploy - 15), at(deploy + 15)
    assert scraped["level"] == 0.0 and after["level"] == 7.0
    assert scraped["rate_total"] - before["rate_total"] == 15.0  # 1/s up to the deploy
    assert after["rate_total"] - scraped["rate_total"] == 150.0  # 10/s right after it
    assert scraped["events_total"] == 0.0 and after["events_total"] == 1.0  # the event at the deploy, seen next
    assert scraped["restarted_total"] > 15.0 and after["restarted_total"] == 15.0  # the restart at the deploy

    scraped = at(rollback)
    fleet.record("r1", "1", "rollback", "k2", rollback)
    assert at(rollback) == scraped  # still "2" at the rollback's sample
    before, after = at(rollback - 15), at(rollback + 15)
    assert scraped["level"] == 7.0 and after["level"] == 0.0
    assert scraped["rate_total"] - before["rate_total"] == 150.0 and after["rate_total"] - scraped["rate_total"] == 15.0
    assert scraped["events_total"] == after["events_total"] == 3.0  # at 5m, 10m and 15m, the last at the rollback
    assert scraped["restarted_total"] == 15.0 and after["restarted_total"] == 30.0  # the restart at the rollback


def test_a_deploy_and_its_rollback_at_one_instant_leave_no_trace(tmp_path):
    fleet = FleetLog(tmp_path / "fleet.jsonl")
    untouched = [series(store_for(fleet=fleet), name, region="r1")[1] for name in ("restarts_total", "queue_depth")]
    fleet.record("r1", "2.0", "deploy", "k1", START + 300)
    fleet.record("r1", "1.0", "rollback", "k2", START + 300)
    store = store_for(fleet=fleet)
    for name, before in zip(("restarts_total", "queue_depth"), untouched):
        assert np.array_equal(series(store, name, region="r1")[1], before), name
    assert store.versions()["r1"] == "1.0"


def test_a_bump_before_the_start_and_a_gap_of_every_metric():
    from guardrail_plugins.sim.generator import ScenarioStore
    from guardrail_plugins.sim.promql import evaluate
    from guardrail_plugins.sim.scenario import Scenario

    scenario = Scenario.model_validate({
        "apiVersion": "guardrail/v1", "kind": "Scenario", "regions": ["r3", "r1"], "baseline_version": "1",
        "step": "15s", "history": "2h",
        "metrics": {"lat": {"type": "gauge", "value": 2}, "req_total": {"type": "counter", "value": 1}},
        "incidents": [{"metric": "lat", "before": "30m", "for": "1h", "bump": 4},  # peaks at the start
                      {"metric": "*", "regions": ["r1"], "after": "10m", "for": "5m", "gap": True}]})
    store = ScenarioStore(scenario, start=START)

    def value(query: str, minutes: float) -> list[float]:
        return [v for _, v in evaluate(query, store, START + minutes * 60)]

    assert value("lat", -31) == [2.0, 2.0] and value("lat", 0) == [6.0, 6.0] and value("lat", 31) == [2.0, 2.0]
    assert value("lat", -15) == pytest.approx([4.0, 4.0])  # smooth: half way up a quarter in
    assert value('rate(req_total{region="r1"}[1m])', 12) == []  # every metric of r1 stops
    assert value('lat{region="r1"}', 16) == value('lat{region="r3"}', 16)
    assert value('rate(req_total{region="r3"}[1m])', 12) == [1.0]


@pytest.mark.parametrize("effect, message", [
    ({"metric": "lat", "bump": 3}, "bump: needs for:"),
    ({"metric": "*", "reset": True}, '"*" (every metric) takes no reset'),
])
def test_bumps_and_every_metric_are_validated(effect, message):
    from guardrail_plugins.sim.scenario import Scenario, check_scenario

    doc = {"apiVersion": "guardrail/v1", "kind": "Scenario", "regions": ["r3"], "baseline_version": "1",
           "metrics": {"lat": {"type": "gauge", "value": 2}}, "incidents": [effect]}
    with pytest.raises(ValueError, match=re.escape(message)):
        check_scenario(Scenario.model_validate(doc))


def test_before_is_for_incidents_only():
    from guardrail_plugins.sim.scenario import Scenario, check_scenario

    doc = {"apiVersion": "guardrail/v1", "kind": "Scenario", "regions": ["r3"], "baseline_version": "1",
           "metrics": {"lat": {"type": "gauge", "value": 2}},
           "versions": {"2": {"effects": [{"metric": "lat", "before": "5m", "add": 1}]}}}
    with pytest.raises(ValueError, match="before: applies to incidents"):
        check_scenario(Scenario.model_validate(doc))
