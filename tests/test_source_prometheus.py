"""The ``prometheus`` source against a real Prometheus (backfilled from
tests/data/prometheus/*.yaml, and scraping a live simulated fleet), and against tiny
local HTTP servers for the failures a healthy Prometheus does not produce: a server
that sleeps, answers 500/503, answers 400 with a Prometheus-shaped error, or speaks TLS
with its own CA."""

from __future__ import annotations

import json
import logging
import math
import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from guardrail.clock import SystemClock, VirtualClock
from guardrail.rollout.evaluation import Evaluator, Item
from guardrail.plugin.interfaces import PluginContext, Probe
from guardrail.judging.judge import CheckState, judge
from guardrail.language.loader import load_plan
from guardrail.language.model import Check
from guardrail.language.types import render
from guardrail.plugin.manager import get_plugin_manager
from guardrail_plugins.prometheus import PrometheusSource, escape_promql, templates_outside_double_quotes
from guardrail_plugins.prometheus_templates import escape_string
from guardrail_plugins.sim import evaluate

pytest_plugins = ["support.prometheus"]

MINUTE = 60.0
DB_CPU = 'db_cpu_utilization_ratio{region="{{region}}"}'


def source(url: str, tmp_path: Path | None = None, **settings) -> PrometheusSource:
    context = PluginContext(clock=SystemClock(), state_dir=tmp_path or Path("."), base_dir=tmp_path or Path("."))
    return PrometheusSource(PrometheusSource.Settings(url=url, **settings), context)


def probe(query: str, region: str = "r1", **variables) -> Probe:
    return Probe("check", region, {"query": render(query, {"region": region, **variables}, escape_promql)})


def check(query: str = DB_CPU, **keys) -> Check:
    return Check.model_validate({"name": "c", "source": "prometheus", "query": query, "fail_if": "> 0.9", **keys})


def verdict_of(reading, **keys):
    return judge(check(**keys), reading, at=0, state=CheckState(), on_no_data="inconclusive")[0]


@pytest.fixture(scope="module")
def prom(prometheus):
    src = source(prometheus.url)
    yield src
    src.close()


# --- settings and templates ----------------------------------------------------------


def test_registered_as_an_ordinary_builtin_plugin():
    assert get_plugin_manager().registry.get("sources", "prometheus") is PrometheusSource
    with pytest.raises(ValidationError, match="http:// or https://"):
        PrometheusSource.Settings(url="prometheus:9090")
    with pytest.raises(ValidationError):
        PrometheusSource.Settings(url="http://p:9090", timeuot="5s")
    assert PrometheusSource.Settings(url="http://p:9090", timeout="2s").timeout == 2.0


@pytest.mark.parametrize("query, outside", [
    ('up{region="{{region}}"}', []),
    ('up{region=~"{{region}}|{{ other }}"} # {{ comment }}', []),
    ('up{a="\\"{{region}}"}', []),
    ("up{region='{{region}}'}", ["{{region}}"]),
    ("up{region=`{{region}}`}", ["{{region}}"]),
    ("rate(up[{{window}}])", ["{{window}}"]),
    ('up{a="x"} or {{region}}', ["{{region}}"]),
])
def test_templates_must_sit_inside_double_quoted_strings(query, outside):
    assert templates_outside_double_quotes(query) == outside
    if outside:
        with pytest.raises(ValidationError, match="must sit inside a double-quoted string"):
            PrometheusSource.Params(query=query)
    else:
        PrometheusSource.Params(query=query)


@pytest.mark.parametrize("query", [r'up{a="\{{region}}"}', r'up{a=~"x\\{{region}}"}', r'up{a=~"\\\{{region}}"}'])
def test_a_template_after_an_unpaired_backslash_is_rejected(query):
    r"""The value's first character would pair with the backslash: ``\r`` of ``r1``
    would be a carriage return, and ``\.`` of ``.*`` a literal dot."""
    with pytest.raises(ValidationError, match="follows a backslash"):
        PrometheusSource.Params(query=query)


@pytest.mark.parametrize("query", [r'up{a="\\{{region}}"}', r'up{a=~"\\\\{{region}}"}', r'up{a=~"\\.{{region}}"}',
                                   r'up{a="\"{{region}}"}'])
def test_a_template_after_a_paired_backslash_is_fine(query):
    assert PrometheusSource.Params(query=query).query == query


# --- readings from the real server ---------------------------------------------------


QUERIES = ['max(db_cpu_utilization_ratio{region="r1"})', 'sum(rate(error_log_writes_total{region="r3"}[5m]))',
           'sum(rate(mail_delivered_total[1m])) by (region)', "avg(mail_queue_depth)", "count(db_cpu_utilization_ratio)"]


@pytest.mark.prometheus
@pytest.mark.parametrize("query", QUERIES)
def test_instant_readings_are_what_prometheus_computes_at_that_time(prom, prometheus, query):
    for offset in (-3 * 3600, 10 * MINUTE, 46.5 * MINUTE, 61 * MINUTE + 7.25, 95 * MINUTE):
        at = prometheus.start + offset
        reading = prom.measure(Probe("c", "r1", {"query": query}), at)
        assert reading.error is None and reading.detail == {"query": query}
        ours = {tuple(sorted((k, v) for k, v in s.labels.items() if k != "__name__")): s.value for s in reading.series}
        expected = {tuple(sorted((k, v) for k, v in labels.items() if k != "__name__")): value
                    for labels, value in evaluate(query, prometheus.store, at)}
        assert ours.keys() == expected.keys()
        for labels, value in expected.items():
            assert math.isclose(ours[labels], value, rel_tol=1e-9), (query, offset, labels)


@pytest.mark.prometheus
def test_scalars_strings_and_range_vectors(prom, prometheus):
    at = prometheus.start
    assert prom.measure(probe("scalar(max(db_cpu_utilization_ratio)) * 2"), at).series[0].value > 0
    assert prom.measure(probe("vector(3)"), at).series[0].value == 3.0
    string = prom.measure(probe('"text"'), at)
    assert string.error.endswith("failed: the query returns the string 'text', not a number")
    matrix = prom.measure(probe(DB_CPU + "[1m]"), at)
    assert "returns a range vector; wrap it in a function such as rate() or max_over_time()" in matrix.error


@pytest.mark.prometheus
def test_nan_and_empty_results_are_no_data(prom, prometheus):
    at = prometheus.start
    for query in ("0 / 0", "db_cpu_utilization_ratio / 0 * 0", 'up{region="nowhere"}', "absent(db_cpu_utilization_ratio)"):
        reading = prom.measure(probe(query), at)
        assert reading.error is None and reading.series == (), query
        assert verdict_of(reading).reason == "no data"
    infinite = prom.measure(probe("1 / 0"), at)
    assert infinite.series[0].value == math.inf  # +Inf is a value, not "no data"


@pytest.mark.prometheus
def test_several_series_need_an_explicit_reduce(prom, prometheus):
    at = prometheus.start + 50 * MINUTE  # r1's first DB node is saturated, the other two are not
    reading = prom.measure(probe(DB_CPU), at)
    values = sorted(s.value for s in reading.series)
    assert len(values) == 3 and values[-1] == 1.0 and values[0] < 0.5
    assert {s.labels["instance"] for s in reading.series} == {"r1-1", "r1-2", "r1-3"}
    silent = verdict_of(reading)
    assert silent.status == "inconclusive" and "returned 3 series; add reduce" in silent.reason
    assert verdict_of(reading, reduce="max").status == "fail"
    assert verdict_of(reading, reduce="max").value == 1.0
    assert verdict_of(reading, reduce="avg").status == "pass"
    assert verdict_of(reading, reduce="min").value == values[0]
    assert verdict_of(reading, reduce="sum").value == pytest.approx(sum(values))
    assert verdict_of(reading, reduce="any").status == "fail" and "1/3 series breach" in verdict_of(reading, reduce="any").reason
    assert verdict_of(reading, reduce="all").status == "pass"


@pytest.mark.prometheus
def test_hostile_region_values_cannot_change_the_query(prom, prometheus):
    """Each hostile region's marker has its own value: a query that matched anything but
    exactly that one label value would show another value, several series, or 1 from
    an injected ``vector(1)``."""
    at = prometheus.start + 10 * MINUTE
    regions = prometheus.hostile.scenario.regions
    for number, region in enumerate(regions, start=1):
        reading = prom.measure(probe('max(marker{region="{{region}}"}) + 0 * count(marker{region="{{region}}"})',
                                     region), at)
        assert reading.error is None, (region, reading.error)
        assert [s.value for s in reading.series] == [float(number)], region
        assert prom.measure(probe('count(marker{region="{{region}}"})', region), at).series[0].value == 1.0
    for attempt in ('nope"}) or vector(1) #', 'nope"} or vector(1) or marker{region="', "nope\\", 'x"\n) or vector(1'):
        escaped = prom.measure(probe('sum(marker{region="{{region}}"})', attempt), at)
        assert escaped.error is None and escaped.series == (), attempt  # no such region: no data
    raw = prom.measure(Probe("c", "x", {"query": render('sum(marker{region="{{region}}"})',
                                                          {"region": 'nope"}) or vector(1) #'})}), at)
    assert [s.value for s in raw.series] == [1.0]  # what escaping prevents, shown against the real server


@pytest.mark.prometheus
def test_a_region_in_a_regex_matcher_matches_only_its_own_label_value(prom, prometheus):
    """Regions named ``r.1``, ``eu-(west)``, ``.*`` (and the string-breaking ones) in a
    ``=~`` or ``!~`` matcher select exactly their own series, as with ``=`` and ``!=``."""
    at = prometheus.start + 10 * MINUTE
    regions = prometheus.hostile.scenario.regions
    assert {"r.1", "rx1", "eu-(west)", "eu-west", ".*"} <= set(regions)
    for number, region in enumerate(regions, start=1):
        for query in ('max(marker{region=~"{{region}}"}) + 0 * count(marker{region=~"{{region}}"})',
                      'max(marker{region=~"^{{region}}$", region!=""})'):
            reading = prom.measure(probe(query, region), at)
            assert reading.error is None, (region, reading.error)
            assert [s.value for s in reading.series] == [float(number)], (region, query)
        others = prom.measure(probe('count(marker{region!~"{{region}}"})', region), at)
        assert others.series[0].value == len(regions) - 1, region
    around = prom.measure(probe('max(marker{region=~"({{region}})|e.-west"})', "eu-(west)"), at)
    assert [s.value for s in around.series] == [13.0]  # the policy's own regex still is one

    def unquoted(region: str) -> list[float]:  # what quoting prevents: the value escaped as a string only
        query = render('marker{region=~"{{region}}"}', {"region": region}, escape_string)
        return sorted(s.value for s in prom.measure(Probe("c", region, {"query": query}), at).series)

    assert unquoted("r.1") == [10.0, 11.0] and unquoted("eu-(west)") == [13.0] and len(unquoted(".*")) > 10


@pytest.mark.prometheus
def test_a_list_in_a_regex_matcher_matches_any_of_its_items_and_nothing_else(prom, prometheus):
    at = prometheus.start + 10 * MINUTE
    total = len(prometheus.hostile.scenario.regions)

    def values(query: str, items: list[str]) -> list[float]:
        reading = prom.measure(probe(query, "r1", items=items), at)
        assert reading.error is None, reading.error
        return sorted(s.value for s in reading.series)

    picked = ["r.1", "eu-(west)", ".*", 'evil"} or vector(1) #']
    assert values('marker{region=~"{{items}}"}', picked) == [2.0, 10.0, 12.0, 14.0]
    assert values('count(marker{region!~"{{items}}"})', picked) == [total - 4]
    assert values('marker{region=~"{{items}}"}', ["r.1"]) == [10.0]
    assert values('marker{region=~"{{items}}"}', []) == []  # any of none
    assert values('count(marker{region!~"{{items}}"})', []) == [total]


@pytest.mark.prometheus
def test_measure_range_returns_the_points_of_instant_queries_at_each_step(prom, prometheus):
    query = probe('sum(rate(mail_delivered_total{region="r3"}[1m]))', "r3")
    start = prometheus.start + 85 * MINUTE + 0.5  # fractional: the library alone would round it
    reading = prom.measure_range(query, start, start + 10 * MINUTE, 30.0)
    assert reading.error is None and len(reading.points) == 21
    assert [t for t, _ in reading.points] == [start + 30 * k for k in range(21)]
    for t, value in reading.points[::5]:
        assert value == pytest.approx(prom.measure(query, t).series[0].value, rel=1e-12)
    several = prom.measure_range(probe(DB_CPU), start, start + 60, 30.0)  # several series: their mean per step
    for t, value in several.points:
        instants = [s.value for s in prom.measure(probe(DB_CPU), t).series]
        assert value == pytest.approx(sum(instants) / len(instants))
    empty = prom.measure_range(probe('up{region="nowhere"}'), start, start + 60, 30.0)
    assert empty.error is None and empty.points == ()


@pytest.mark.prometheus
def test_long_ranges_are_split_below_prometheus_limit(prom, prometheus):
    start, end = prometheus.start, prometheus.start + 4 * 3600.0  # 14,401 points at 1s
    answer = httpx.get(f"{prometheus.url}/api/v1/query_range", timeout=10, params={
        "query": "vector(1)", "start": start, "end": end, "step": 1}).json()
    assert "exceeded maximum resolution" in answer["error"]  # one request would be refused
    reading = prom.measure_range(probe("vector(1)"), start, end, 1.0)
    assert reading.error is None and len(reading.points) == 14401
    assert reading.points[0][0] == start and reading.points[-1][0] == end
    assert all(b[0] - a[0] == 1.0 for a, b in zip(reading.points, reading.points[1:]))


@pytest.mark.prometheus
def test_for_holds_over_real_readings(prom, prometheus):
    """r1's DB saturates at +45m (ramp 2m) for 20m: with ``for: 2m`` it fails exactly
    2m after the first breaching tick. r2's 1-minute spike at +30m never fails."""
    spec = check(reduce="max", **{"for": "2m"})
    outcomes = {}
    for region in ("r1", "r2"):
        state, first_breach, failed_at, pending = CheckState(), None, None, 0
        for k in range(61):  # +25m .. +55m every 30s
            at = prometheus.start + 25 * MINUTE + 30 * k
            verdict, state = judge(spec, prom.measure(probe(DB_CPU, region), at), at=at, state=state,
                                   on_no_data="inconclusive")
            assert verdict.status != "inconclusive", verdict.reason
            pending += verdict.pending
            if verdict.pending and first_breach is None:
                first_breach = at
            if verdict.status == "fail" and failed_at is None:
                failed_at = at
                assert verdict.reason.endswith("held 2m")
        outcomes[region] = (first_breach, failed_at, pending)
    first, failed, _ = outcomes["r1"]
    assert first is not None and failed - first == 120.0
    assert 46 * MINUTE < first - prometheus.start <= 47 * MINUTE
    spike_first, spike_failed, spike_pending = outcomes["r2"]
    assert spike_failed is None and spike_pending == 2 and spike_first == prometheus.start + 30 * MINUTE


@pytest.mark.prometheus
def test_a_live_scrape_of_the_simulated_fleet_is_queryable(prom, prometheus):
    deadline = time.monotonic() + 30
    while True:
        reading = prom.measure(probe("sum(live_queue_depth)"), time.time())
        if reading.series or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert reading.series, "no live sample within 30s of the session start"
    assert reading.series[0].value == 42 * 2 * 2  # 2 instances x 2 regions, as served on /metrics
    by_instance = prom.measure(probe('live_queue_depth{region="r3"}'), time.time())
    assert {s.labels["instance"] for s in by_instance.series} == {"r3-1", "r3-2"}  # honor_labels kept them
    deadline = time.monotonic() + 30
    while True:  # two samples on distinct grid seconds: the counter grows 10/s, exactly
        rate = prom.measure(probe('sum(irate(live_requests_total{region="r1"}[1m]))'), time.time())
        if rate.series or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert rate.series and rate.series[0].value == pytest.approx(10.0, rel=1e-9)


@pytest.mark.prometheus
def test_the_evaluator_renders_escapes_and_measures_concurrently(prometheus, tmp_path, registry):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: guardrail/v1\nkind: Policy\nname: p\nchecks:\n"
        '  - {name: marker, source: prometheus, query: \'max(marker{region="{{region}}"})\', fail_if: "> 100"}\n'
        '  - {name: cpu, source: prometheus, query: \'max(db_cpu_utilization_ratio{region="{{db_region}}"})\','
        ' fail_if: "> 0.9"}\n'
        '  - {name: near, source: prometheus, query: \'sort(marker{region=~"{{near}}"})\', fail_if: "> 100"}\n')
    hostile = 'evil"} or vector(1) #'
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps({
        "apiVersion": "guardrail/v1", "kind": "Rollout", "service": "s", "change": {"version": "2", "previous": "1"},
        "deploy": {"plugin": "noop"}, "sources": {"prometheus": {"url": "http://127.0.0.1:9", "timeout": "5s"}},
        "regions": {"plain": {"vars": {"db_region": "r1", "near": ["r.1", "eu-(west)"]},
                              "sources": {"prometheus": {"url": prometheus.url}}},
                    hostile: {"vars": {"db_region": "r2", "near": []},
                              "sources": {"prometheus": {"url": prometheus.url}}}},
        "waves": [{"name": "all", "regions": ["plain", hostile], "bake": "1m"}], "policies": ["policy.yaml"]}))
    loaded = load_plan(plan, registry)
    evaluator = Evaluator(loaded, registry, PluginContext(clock=VirtualClock(0), state_dir=tmp_path, base_dir=tmp_path))
    try:
        at = prometheus.start + 50 * MINUTE
        readings = evaluator.measure(evaluator.items(["plain", hostile]), at)
        values = {(i.region, i.check): [s.value for s in r.series] for i, r in readings.items()}
        assert values[("plain", "marker")] == [1.0] and values[(hostile, "marker")] == [2.0]
        assert values[("plain", "cpu")] == [1.0] and values[(hostile, "cpu")][0] < 0.9
        assert values[("plain", "near")] == [10.0, 12.0] and values[(hostile, "near")] == []  # r.1, eu-(west); none
        assert r'region=~"(?:r\\.1|eu-\\(west\\))"' in evaluator.query_text(Item("p", "near", "plain"))
        assert 'region=\\"}' not in evaluator.query_text(Item("p", "marker", "plain"))
        assert 'evil\\"} or vector(1) #' in evaluator.query_text(Item("p", "marker", hostile))
    finally:
        evaluator.close()


# --- failures: every one is an inconclusive reading with a clear reason ----------------


class Fake:
    """A tiny local HTTP(S) server. ``answer(handler) -> (status, body, delay)``."""

    def __init__(self, answer, tls: ssl.SSLContext | None = None):
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                fake.requests.append({"path": self.path, "headers": dict(self.headers)})
                status, body, delay = answer(self)
                time.sleep(delay)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    servers = []

    def start(answer, tls=None):
        servers.append(Fake(answer, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


VECTOR = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "7"]}]}}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_names_source_and_query(reason: str, url: str, query: str):
    assert reason.startswith(f"prometheus {url}: query {query!r} failed: "), reason


def test_refused_connection(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    reading = source(url, retries=1).measure(probe("up"), 0)
    assert_names_source_and_query(reading.error, url, "up")
    assert reading.error.endswith("cannot connect (Connection refused) (after 2 attempts)")
    assert source(url, retries=0).measure_range(probe("up"), 0, 60, 30).error.endswith("cannot connect (Connection refused)")


def test_timeout_is_bounded_by_the_budget(fake):
    server = fake(lambda h: (200, VECTOR, 3.0))
    started = time.monotonic()
    reading = source(server.url, timeout="300ms").measure(probe("up"), 0)
    elapsed = time.monotonic() - started
    assert reading.error.endswith("failed: no answer within 0.3s (timeout)") and elapsed < 1.0
    sent = server.requests[0]["path"]
    assert "timeout=0.3" in sent and "time=0.000" in sent  # Prometheus stops evaluating when we stop waiting
    assert len(server.requests) == 1  # a timed-out query is not retried: the budget is spent


def test_server_errors_are_retried_within_the_budget_then_reported(fake):
    unavailable = fake(lambda h: (503, {"status": "error", "errorType": "unavailable", "error": "TSDB not ready"}, 0))
    reading = source(unavailable.url, retries=2).measure(probe("up"), 0)
    assert len(unavailable.requests) == 3
    assert reading.error.endswith("failed: HTTP 503: unavailable: TSDB not ready (after 3 attempts)")
    internal = fake(lambda h: (500, {"status": "error", "errorType": "internal", "error": "boom"}, 0))
    reading = source(internal.url).measure(probe("up"), 0)
    assert reading.error.endswith("failed: HTTP 500: internal: boom") and len(internal.requests) == 1
    slow = fake(lambda h: (503, b"<html>gateway</html>", 0.2))
    reading = source(slow.url, timeout="300ms", retries=5).measure(probe("up"), 0)
    assert len(slow.requests) == 1 and reading.error.endswith("HTTP 503: <html>gateway</html>")  # no time left


def test_the_library_default_retry_policy_raises_retry_error_which_is_handled(fake):
    """prometheus-api-client's own policy retries 5xx and then raises requests'
    RetryError; guardrail does not use it, but a reading must survive it."""
    import requests
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    server = fake(lambda h: (500, {"status": "error", "error": "boom"}, 0))
    library = PrometheusConnect(server.url, retry=Retry(total=2, backoff_factor=0, status_forcelist=[500]))
    with pytest.raises(requests.exceptions.RetryError):
        library.custom_query("up")
    src = source(server.url)
    src._prom = library
    reading = src.measure(probe("up"), 0)
    assert reading.error.endswith("failed: server errors until retries ran out (too many 500 error responses)")


def test_a_prometheus_error_answer_carries_its_text(fake):
    server = fake(lambda h: (422, {"status": "error", "errorType": "execution",
                                   "error": "many-to-many matching not allowed"}, 0))
    reading = source(server.url).measure(probe("a / b"), 0)
    assert reading.error.endswith("failed: HTTP 422: many-to-many matching not allowed")
    html = fake(lambda h: (200, b"<html>login page</html>", 0))
    assert source(html.url).measure(probe("up"), 0).error.endswith("the answer is not Prometheus API JSON (JSONDecodeError)")


@pytest.mark.prometheus
def test_a_bad_query_is_reported_with_prometheus_own_words(prom, prometheus):
    reading = prom.measure(probe("sum(rate(mail_delivered_total[5m])"), prometheus.start)
    assert_names_source_and_query(reading.error, prometheus.url, "sum(rate(mail_delivered_total[5m])")
    assert reading.error.endswith('HTTP 400: invalid parameter "query": 1:35: parse error: unclosed left parenthesis')
    ranged = prom.measure_range(probe("rate(x)"), prometheus.start, prometheus.start + 60, 30)
    assert ranged.error.endswith('HTTP 400: 1:6: parse error: expected type range vector in call to function "rate",'
                                 ' got instant vector')
    assert prom.parse_error("sum(rate(x[5m])") == "1:16: parse error: unclosed left parenthesis"
    assert prom.parse_error('sum(rate(x{a="b"}[5m]))') is None
    with pytest.raises(RuntimeError, match="cannot connect"):
        source(f"http://127.0.0.1:{closed_port()}", retries=0).parse_error("up")


def test_credentials_are_sent_and_never_shown(fake):
    def echo(handler):
        auth = handler.headers.get("Authorization", "")
        return 401, {"status": "error", "errorType": "auth", "error": f"rejected {auth} key={handler.headers.get('X-Key')}"}, 0

    server = fake(echo)
    bearer = source(server.url, bearer_token="s3cr3t-token", headers={"X-Key": "k3y-value"}).measure(probe("up"), 0)
    assert server.requests[-1]["headers"]["Authorization"] == "Bearer s3cr3t-token"
    assert "s3cr3t-token" not in bearer.error and "k3y-value" not in bearer.error and "rejected Bearer ***" in bearer.error
    basic = source(server.url, username="guard", password="pa55word").measure(probe("up"), 0)
    assert server.requests[-1]["headers"]["Authorization"].startswith("Basic ")
    assert "pa55word" not in basic.error
    with_userinfo = server.url.replace("http://", "http://guard:pa55word@")
    reading = source(with_userinfo).measure(probe("up"), 0)
    assert reading.error.startswith(f"prometheus {server.url}: ") and "pa55word" not in reading.error


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1 (openssl)."""
    base = tmp_path_factory.mktemp("tls")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=base, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=guardrail test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (base / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return base


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification_and_ca_file(fake, tls_files):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "server.pem", tls_files / "server.key")
    server = fake(lambda h: (200, VECTOR, 0), tls=context)
    unknown = source(server.url, retries=0).measure(probe("up"), 0)
    assert "failed: TLS error: certificate verify failed" in unknown.error
    trusted = source(server.url, tls_files, ca_file="ca.pem").measure(probe("up"), 0)  # relative to the plan
    assert trusted.error is None and trusted.series[0].value == 7.0
    unverified = source(server.url, verify_tls=False).measure(probe("up"), 0)
    assert unverified.error is None


# --- concurrency ------------------------------------------------------------------------


@pytest.mark.prometheus
def test_one_source_is_safe_from_many_threads(prometheus, caplog):
    queries = [probe(f'max(db_cpu_utilization_ratio{{region="{r}"}}) + {k}') for r in ("r1", "r2", "r3") for k in range(20)]
    at = prometheus.start + 50 * MINUTE
    src = source(prometheus.url, connections=16)
    expected = [src.measure(q, at) for q in queries]
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    with ThreadPoolExecutor(16) as pool:
        for _ in range(3):
            assert list(pool.map(lambda q: src.measure(q, at), queries)) == expected
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    small = source(prometheus.url, connections=2)  # why the pool is sized: extra connections are thrown away
    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(lambda q: small.measure(q, at), queries)) == expected
    assert [r for r in caplog.records if "pool is full" in r.getMessage()]
    src.close()
    small.close()
