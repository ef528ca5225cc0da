"""The ``sim`` source and deployer as guardrail uses them, ``/metrics`` over real HTTP,
OpenMetrics accepted by the real ``promtool``, and the evaluator cross-checked against a
real Prometheus 2.42 that was backfilled with the same samples."""

from __future__ import annotations

import math
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from guardrail.clock import VirtualClock
from guardrail.errors import ConfigError
from guardrail.plugin.interfaces import PluginContext, Probe, Reading, Source, Target
from guardrail.language.types import render
from guardrail.plugin.manager import get_plugin_manager
from guardrail_plugins.sim import FleetLog, SimDeployer, SimSource, evaluate, open_store
from guardrail_plugins.sim.exposition import serve_metrics, write_openmetrics
from guardrail_plugins.sim.promql import PromQLError
from support.debian import ensure

SCENARIOS = Path(__file__).parent / "data" / "scenarios"
T0 = 1672938000.0  # 2023-01-05 17:00 UTC, on the 15s grid
HOSTILE_SCENARIO = Path(__file__).parent / "data" / "prometheus" / "hostile-labels.yaml"
RESTARTS = 'sum(increase(service_restarts_total{service="sender",region="{{region}}"}[15m]))'


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.fixture
def context(clock, tmp_path):
    return PluginContext(clock=clock, state_dir=tmp_path / "state", base_dir=SCENARIOS, service="mail-sender")


def make(context, **deployer_settings):
    source = SimSource(SimSource.Settings(scenario="r3-sender-restarts.yaml"), context)
    deployer = SimDeployer(SimDeployer.Settings(scenario="r3-sender-restarts.yaml", **deployer_settings), context)
    return source, deployer


def probe(query, region, **variables):
    return Probe("check", region, {"query": render(query, {"region": region, **variables}, SimSource.escape)})


def target(region, key=None, version="2023.01.05", action="deploy"):
    return Target("mail-sender", region, version, "2022.12.14", action, key or f"ro-1/{region}/{action}")


def restarts(source, region, at):
    reading = source.measure(probe(RESTARTS, region), at)
    assert reading.error is None, reading.error
    return reading.series[0].value


def test_registered_as_ordinary_builtin_plugins():
    registry = get_plugin_manager().registry
    assert registry.get("sources", "sim") is SimSource and issubclass(SimSource, Source)
    assert registry.get("deployers", "sim") is SimDeployer
    assert "Scenario" in registry.document_kinds
    with pytest.raises(ValidationError):
        SimSource.Settings(scenario="x.yaml", fleeet="y")
    with pytest.raises(ValidationError):
        SimDeployer.Settings(scenario="x.yaml", delay="soon")


def test_a_bad_scenario_path_is_a_config_error(context):
    with pytest.raises(ConfigError, match="file not found"):
        SimSource(SimSource.Settings(scenario="missing.yaml"), context)


def test_restarts_appear_only_after_the_bad_version_is_deployed(context, clock):
    source, deployer = make(context)
    for _ in range(4):  # healthy for an hour
        clock.sleep(15 * 60)
        assert restarts(source, "r3", clock.now()) == 0
    deployed_at = clock.now()
    assert deployer.deploy(target("r3")).ok
    clock.sleep(4 * 60)
    assert restarts(source, "r3", clock.now()) == 0  # first restart ~5m after the deploy
    clock.sleep(15 * 60)
    assert restarts(source, "r3", clock.now()) >= 2
    assert restarts(source, "r1", clock.now()) == 0  # r1 still runs 2022.12.14
    assert restarts(source, "r3", deployed_at) == 0  # the past did not change
    stalled = source.measure(probe('max_over_time(mail_sends_stalled{region="{{region}}"}[15m])', "r3"), clock.now())
    assert stalled.series[0].value > 20
    assert deployer.rollback(target("r3", action="rollback")).ok
    clock.sleep(16 * 60)
    assert restarts(source, "r3", clock.now()) == 0


def test_the_default_fleet_log_is_shared_through_the_state_dir(context, clock):
    source, deployer = make(context)
    deployer.deploy(target("r3"))
    log = context.state_dir / "sim-fleet-mail-sender.jsonl"
    actions = [line for line in FleetLog(log).records if line["action"] != "start"]
    assert actions == [{"at": T0, "region": "r3", "version": "2023.01.05", "action": "deploy", "key": "ro-1/r3/deploy"}]
    assert FleetLog(log).start() == T0  # pinned by the first user of the log
    clock.sleep(30 * 60)
    assert restarts(source, "r3", clock.now()) > 0


def test_deploys_are_idempotent_per_key(context, clock):
    _, deployer = make(context, delay="2m")
    first = deployer.deploy(target("r3"))
    assert first.ok and clock.now() == T0 + 120
    again = deployer.deploy(target("r3"))
    assert again.ok and "already done" in again.detail and clock.now() == T0 + 120  # no second wait
    assert len([r for r in deployer.fleet.records if r.get("key") == "ro-1/r3/deploy"]) == 1
    assert deployer.deploy(target("r3", key="ro-2/r3/deploy")).ok
    assert len(deployer.fleet.timeline("r3")) == 2


def test_failing_regions(context):
    _, deployer = make(context, fail_regions=["r1"], fail_rollback_regions=["r2"])
    failed = deployer.deploy(target("r1"))
    assert not failed.ok and "fail_regions" in failed.detail
    assert deployer.fleet.timeline("r1") == []
    assert deployer.deploy(target("r2")).ok
    failed = deployer.rollback(target("r2", action="rollback"))
    assert not failed.ok and "fail_rollback_regions" in failed.detail
    assert deployer.fleet.version("r2", "2022.12.14") == "2023.01.05"
    unknown = deployer.deploy(target("eu-9"))
    assert not unknown.ok and "not in the scenario" in unknown.detail


def test_readings_errors_and_no_data(context, clock):
    source, _ = make(context)
    clock.sleep(600)
    now = clock.now()
    failed = source.measure(probe("histogram_quantile(0.95, x)", "r3"), now)
    assert failed.error and "histogram_quantile(0.95, x)" in failed.error and "not supported" in failed.error
    assert source.measure(probe('up{region="{{region}}"}', "r3"), now) == Reading(detail={"query": 'up{region="r3"}'})
    assert source.measure(probe("0 / 0", "r3"), now).series == ()  # NaN is no data
    probes = source.measure(probe('probe_success{region="{{region}}"}', "r3"), now).series
    assert sorted(s.labels["instance"] for s in probes) == [f"r3-{i}" for i in range(1, 6)]
    assert all(s.labels["__name__"] == "probe_success" and s.value == 1 for s in probes)


def test_hostile_region_names_are_escaped(context, clock):
    source, _ = make(context)
    hostile = 'r3"} or vector(1) #'
    reading = source.measure(probe(RESTARTS, hostile), clock.now())
    assert reading.error is None and reading.series == ()  # no such region: no data, not vector(1)
    assert '\\"' in reading.detail["query"]


def test_measure_range_matches_the_base_class(context, clock):
    source, deployer = make(context)
    deployer.deploy(target("r3"))
    clock.sleep(3600)
    check = probe('sum(rate(mail_delivered_total{region="{{region}}"}[1m]))', "r3")
    fast = source.measure_range(check, T0, T0 + 1800, 30)
    assert fast == Source.measure_range(source, check, T0, T0 + 1800, 30) and len(fast.points) == 61
    assert source.measure_range(probe("rate(x)", "r3"), T0, T0 + 60, 30).error


def test_answers_a_two_hour_bake_of_fifty_checks_quickly(context, clock):
    source, deployer = make(context)
    queries = [RESTARTS, 'sum(rate(error_log_writes_total{region="{{region}}"}[5m]))',
               'avg(probe_success{module="smtp_banner",region="{{region}}"})',
               'max_over_time(mail_sends_stalled{region="{{region}}"}[10m])',
               'max(mail_queue_latency_p95_seconds{region="{{region}}"})']
    probes = [probe(q, "r3") for q in queries] * 10
    deployer.deploy(target("r3"))
    started = time.process_time()  # CPU time: what a loaded machine does not stretch
    for _ in range(720):  # 2h at 10s
        clock.sleep(10)
        for check in probes:
            source.measure(check, clock.now())
    elapsed = time.process_time() - started
    assert elapsed < 5.0, f"36000 queries took {elapsed:.2f}s of CPU"  # ~0.4s here; the engine benchmark runs 3x this


# --- exposition ----------------------------------------------------------------------


def test_metrics_endpoint_serves_the_same_samples_over_http(context, clock):
    store = open_store(SCENARIOS / "r3-sender-restarts.yaml", fleet=context.state_dir / "fleet.jsonl", now=T0)
    store.fleet.record("r3", "2023.01.05", "deploy", "k", T0)
    clock.sleep(3600 + 7)
    with serve_metrics(store, clock) as server:
        response = httpx.get(server.url, timeout=5)
        assert httpx.get(server.url.replace("/metrics", "/other"), timeout=5).status_code == 404
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert "# TYPE service_restarts_total counter" in text and "# TYPE probe_success gauge" in text
    samples = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            samples[name_labels] = float(value)
    assert samples['probe_success{instance="r1-3",module="smtp_banner",region="r1"}'] == 1.0
    for query in ('service_restarts_total{region="r3"}', 'mail_delivered_total{region="r2"}', 'mail_sends_stalled{region="r3"}',
                  "db_cpu_utilization_ratio"):
        for labels, value in evaluate(query, store, clock.now()):
            inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
            assert samples[f"{labels['__name__']}{{{inner}}}"] == value
    assert samples['service_restarts_total{instance="r3-2",region="r3",service="sender"}'] >= 7


def backfill(store, start, end, directory):
    directory.mkdir(parents=True, exist_ok=True)
    data = directory.parent / "export.om"
    written = write_openmetrics(store, start, end, data)
    promtool = ensure("promtool", "prometheus")
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(data), str(directory)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    return written, data, done.stdout


def test_openmetrics_export_is_accepted_by_promtool(tmp_path):
    store = open_store(SCENARIOS / "every-effect.yaml", fleet=tmp_path / "fleet.jsonl")
    start = store.scenario.start_epoch
    written, data, report = backfill(store, start - 3600, start + 1800, tmp_path / "tsdb")
    text = data.read_text()
    assert text.endswith("# EOF\n") and "# TYPE requests counter\n" in text and "# TYPE up gauge\n" in text
    first = next(line for line in text.splitlines() if line.startswith("requests_total{"))
    assert re.fullmatch(r'requests_total\{instance="r1-1",region="r1"\} [0-9.e+-]+ 1730826000', first)
    counted = sum(int(row.split()[4]) for row in report.splitlines()[1:] if row.strip())
    assert counted == written > 0


# --- the cross-check against a real Prometheus ---------------------------------------


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A real Prometheus 2.42 over a TSDB backfilled from every-effect.yaml, with one
    deploy, one late deploy and one rollback in the fleet log, and from
    tests/data/prometheus/hostile-labels.yaml (label values for the regex matchers)."""
    base = tmp_path_factory.mktemp("prometheus")
    fleet = FleetLog(base / "fleet.jsonl")
    store = open_store(SCENARIOS / "every-effect.yaml", fleet=fleet)
    start = store.scenario.start_epoch
    fleet.record("r1", "2.0", "deploy", "d1", start + 300)
    fleet.record("r2", "2.0", "deploy", "d2", start + 900.5)
    fleet.record("r1", "1.0", "rollback", "r1", start + 2700)
    backfill(store, start - 7200, start + 3600, base / "tsdb")
    hostile = open_store(HOSTILE_SCENARIO)
    backfill(hostile, hostile.scenario.start_epoch - 1800, hostile.scenario.start_epoch + 3600, base / "tsdb")
    (base / "prometheus.yml").write_text("global: {}\n")
    log_path = base / "prometheus.log"
    binary = ensure("prometheus", "prometheus")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={base / 'prometheus.yml'}", f"--storage.tsdb.path={base / 'tsdb'}",
             "--storage.tsdb.retention.time=100y", "--web.listen-address=127.0.0.1:0"],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        # Generous deadlines: they only matter when Prometheus fails to start, and loading
        # the backfilled blocks takes a loaded machine a while.
        port, deadline = None, time.monotonic() + 120
        while port is None and time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()
            found = re.search(r'msg="Listening on" address=127\.0\.0\.1:(\d+)', log_path.read_text())
            port = int(found.group(1)) if found else time.sleep(0.05)
        assert port, log_path.read_text()
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.get("/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"prometheus is not ready:\n{log_path.read_text()}"
            time.sleep(0.05)
        yield client, store, hostile
        client.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


CROSS_QUERIES = [
    'sum(increase(restarts_total{service="api",region="r1"}[15m]))',
    "rate(requests_total[5m])",
    'increase(requests_total{region="r2"}[10m])',
    "increase(requests_total[1h])",
    "increase(requests_total[45s])",
    "sum by (region) (rate(requests_total[2m]))",
    "sum(rate(requests_total[5m])) by (region)",
    "sum without (instance) (irate(requests_total[1m]))",
    "max by (instance) (rate(requests_total[1m]))",
    "rate(requests_total[5m]) / rate(requests_total[5m] offset 5m)",
    "requests_total offset 10m",
    "queue_depth",
    "delta(queue_depth[10m])",
    "abs(delta(queue_depth[3m]))",
    "avg_over_time(cpu_ratio[5m])",
    "max_over_time(cpu_ratio[5m])",
    "min_over_time(queue_depth[5m])",
    "sum_over_time(queue_depth[10m])",
    "count_over_time(queue_depth[10m])",
    "last_over_time(queue_depth[10m])",
    "count(up == 1)",
    "avg(up)",
    "min by (region) (up)",
    'up{instance=~"r1-[12]"}',
    "count(up) without (instance)",
    "cpu_ratio * 100",
    "1 - cpu_ratio",
    "queue_depth / 2 + 1",
    "queue_depth > bool 30",
    "max(cpu_ratio) > 0.5",
    "clamp_max(queue_depth, 20)",
    "scalar(max(cpu_ratio)) * 2",
    "count(up == 0) or vector(0)",
    'queue_depth unless queue_depth{region="r1"}',
    'rate(requests_total[1m]) and requests_total{instance="r1-1"}',
]
CROSS_OFFSETS = [300, 612.5, 900, 1290, 1500, 1625, 1807, 2100, 2520, 2700, 3000, 3333, -6600, -5993]


@pytest.mark.prometheus
@pytest.mark.parametrize("query", CROSS_QUERIES)
def test_the_evaluator_agrees_with_a_real_prometheus(prometheus, query):
    client, store, _ = prometheus
    start = store.scenario.start_epoch
    for offset in CROSS_OFFSETS:
        at = start + offset
        answer = client.get("/api/v1/query", params={"query": query, "time": repr(at)}).json()
        assert answer["status"] == "success", answer
        data = answer["data"]
        if data["resultType"] == "scalar":
            theirs = {(): float(data["result"][1])}
        else:
            theirs = {tuple(sorted(item["metric"].items())): float(item["value"][1]) for item in data["result"]}
        result = evaluate(query, store, at)
        ours = {(): result} if isinstance(result, float) else {tuple(sorted(lb.items())): v for lb, v in result}
        assert ours.keys() == theirs.keys(), (query, offset)
        for labels, value in theirs.items():
            assert math.isclose(ours[labels], value, rel_tol=1e-6, abs_tol=1e-9), (query, offset, labels, ours[labels], value)


REGEX_QUERIES = [
    r'marker{region=~"r\\.1"}',  # the regex r\.1: a literal dot
    'marker{region=~"r.1"}',
    'marker{region=~"r.1|eu-west|plain"}',
    'marker{region=~"eu-(west)"}',
    r'marker{region=~"eu-\\(west\\)|\\.\\*"}',
    'marker{region=~".*"}',  # `.` does not match the newline of "new\nline"
    'marker{region=~".+"}',
    'marker{region=~"new.line"}',
    'marker{region=~"(?s)new.line"}',
    r'marker{region=~"new\nline"}',
    r'marker{region=~"new\\nline"}',
    'marker{region=~"new.*|.*line"}',
    'marker{region!~".*"}',
    'marker{region!~"r.1|.*e.*"}',
    'count(marker{region!~"r.*"})',
    'marker{region=~"(?i)PLAIN|R.1"}',
    'marker{region=~"[a-z]+"}',
    r'marker{region=~"\\w+"}',
    r'marker{region=~"\\S+"}',
    r'marker{region=~"r\\d"}',
    'marker{region=~"rx1$"}',
    r'marker{region=~".*\\\\.*"}',
    r'marker{region=~`back\\slash\\`}',
    'marker{region=~"it\'s|tick`tock"}',
    'marker{region=~"région-.*"}',
    'marker{region=~"1"}',
]
RE2_REFUSES = [
    r'marker{region=~"(r)\\1"}',
    'marker{region=~"r(?=x)1"}',
    'marker{region=~"r(?!x).*"}',
    'marker{region=~"(?<=r)x1"}',
    'marker{region=~"(?<!r)x1"}',
    'marker{region=~"(?>rx)1"}',
    'marker{region=~"rx*+1"}',
    'marker{region=~"(?x)rx1"}',
]


@pytest.mark.prometheus
def test_regex_matchers_agree_with_a_real_prometheus(prometheus):
    """RE2 as Prometheus uses it: anchored, ``.`` without newlines, on hostile label values."""
    client, _, hostile = prometheus
    assert "new\nline" in hostile.scenario.regions
    for at in (hostile.scenario.start_epoch + 600, hostile.scenario.start_epoch + 1815):
        for query in REGEX_QUERIES:
            answer = client.get("/api/v1/query", params={"query": query, "time": repr(at)}).json()
            assert answer["status"] == "success", (query, answer)
            theirs = {tuple(sorted(item["metric"].items())): float(item["value"][1]) for item in answer["data"]["result"]}
            ours = {tuple(sorted(lb.items())): v for lb, v in evaluate(query, hostile, at)}
            assert ours == theirs, query
    matched = {query: len(evaluate(query, hostile, hostile.scenario.start_epoch + 600)) for query in REGEX_QUERIES}
    assert matched[r'marker{region=~"r\\.1"}'] == 1 and matched['marker{region=~"r.1"}'] == 2
    assert matched['marker{region=~"(?s)new.line"}'] == 1 and matched['marker{region=~"new.line"}'] == 0


@pytest.mark.prometheus
@pytest.mark.parametrize("query", RE2_REFUSES)
def test_regex_syntax_re2_lacks_is_refused_by_both(prometheus, query):
    client, _, hostile = prometheus
    answer = client.get("/api/v1/query", params={"query": query}).json()
    assert answer["status"] == "error" and answer["errorType"] == "bad_data", answer
    with pytest.raises(PromQLError, match="not supported by RE2"):
        evaluate(query, hostile, hostile.scenario.start_epoch + 600)


def test_every_policy_query_of_the_library_runs_on_the_quickstart_fleet(context, clock):
    """The same policy file must run against the sim: every ``query`` in policies/ parses,
    and on a healthy fleet every one has data (no check is inconclusive by design)."""
    import yaml

    source, _ = make(context)
    clock.sleep(3600)
    queries = [check["query"] for path in sorted((SCENARIOS.parents[2] / "policies").glob("*.yaml"))
               for check in (yaml.safe_load(path.read_text()) or {}).get("checks", []) if "query" in check]
    assert queries
    for query in queries:
        reading = source.measure(probe(query, "r3"), clock.now())
        assert reading.error is None and reading.series, (query, reading)


@pytest.mark.parametrize("query, words", [
    ('sum(up{region={{region}}})', "{{region}} must sit inside a double-quoted string"),
    ("sum(up{region='{{region}}'})", "{{region}} must sit inside a double-quoted string"),
    ('sum(up{region=~"\\\\{{region}}"})', "{{region}} follows a backslash"),
])
def test_validate_refuses_a_sim_query_where_prometheus_would(tmp_path, cli, query, words):
    """Query templates are checked as for the ``prometheus`` source: same place, same message."""
    outputs = {}
    for source in ("sim", "prometheus"):
        policy = tmp_path / source / "policy.yaml"
        policy.parent.mkdir()
        policy.write_text(
            "apiVersion: guardrail/v1\n"
            "kind: Policy\n"
            "name: templates\n"
            "checks:\n"
            "  - name: restarts\n"
            f"    source: {source}\n"
            f"    query: '{query.replace(chr(39), chr(39) * 2)}'\n"
            "    fail_if: '> 0'\n")
        result = cli("validate", str(policy))
        assert result.exit_code == 2, result.output
        assert f"{policy}:7:" in result.output and words in result.output, result.output
        outputs[source] = result.output.replace(str(policy), "POLICY")
    assert outputs["sim"] == outputs["prometheus"]
