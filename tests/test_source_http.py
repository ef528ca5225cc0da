"""The ``http`` source against a real ``http.server`` on 127.0.0.1: JSON bodies, slow
answers, 500s and 404s, a page that echoes the caller's secret header."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from guardrail.clock import SystemClock
from guardrail.plugin.interfaces import PluginContext, Probe, Reading
from guardrail.language.loader import check_policy
from guardrail.language.types import render_value
from guardrail.language.yamldoc import parse
from guardrail_plugins.http import HttpSource, lookup, parse_json_path, redact_url

SECRET = "Bearer s3cr3t-t0ken-do-not-print"
API_KEY = "k3y-abcdef-123456"

STATS = {"data": {"queue": {"depth": 42, "paused": False}}, "items": [{"value": 7.5}, {"value": 8}],
         "label": "busy", "backlog": "17", "nothing": None}

STATE = Path(tempfile.gettempdir())  # neither source keeps state


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/stats":
            self._send(200, json.dumps(STATS).encode())
        elif url.path == "/slow":
            time.sleep(float(query.get("delay", ["1"])[0]))
            self._send(200, b'{"ok": true}')
        elif url.path == "/error":
            self._send(500, b'{"error": "boom"}')
        elif url.path == "/html":
            self._send(200, b"<html>maintenance</html>", "text/html")
        elif url.path == "/echo-auth":  # a badly behaved server: echoes the secret back
            self._send(502, f"upstream rejected {self.headers.get('Authorization')}".encode(), "text/plain")
        elif url.path == "/echo-auth-200":
            self._send(200, f"you sent {self.headers.get('Authorization')} {self.headers.get('X-Api-Key')}".encode(),
                       "text/plain")
        elif url.path == "/keyed":
            ok = self.headers.get("X-Api-Key") == API_KEY and self.headers.get("Authorization") == SECRET
            self._send(200 if ok else 401, b"{}")
        elif url.path == "/args":
            self._send(200, json.dumps({"count": len(query), "path": url.path, "args": query}).encode())
        elif url.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/stats")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, b'{"error": "not found"}')

    do_HEAD = do_GET


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that gave up on a slow answer is what the timeout tests do


@pytest.fixture(scope="module")
def server():
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def refused_url():
    """A port that refuses connections: bound but never listening, and held for the whole
    test so that no other process can take it meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def make_source(**settings) -> HttpSource:
    return HttpSource(HttpSource.Settings(**settings), PluginContext(SystemClock(), STATE))


@pytest.fixture
def source(server):
    s = make_source(base_url=server)
    yield s
    s.close()


def measure(source: HttpSource, **params) -> Reading:
    return source.measure(Probe("queue-api", "r3", params), time.time())


def value(reading: Reading) -> float:
    assert reading.error is None, reading.error
    assert len(reading.series) == 1
    return reading.series[0].value


# --- measure: up ----------------------------------------------------------------------


def test_up_is_one_for_an_expected_status(source):
    assert value(measure(source, url="/stats")) == 1
    assert value(measure(source, url="/moved")) == 1  # 3xx is in the default 200-399


@pytest.mark.parametrize("path, status", [("/error", 500), ("/nope", 404)])
def test_up_is_zero_for_an_error_status(source, path, status):
    reading = measure(source, url=path)
    assert value(reading) == 0
    assert reading.detail["reason"] == f"HTTP {status}, expected 200-399"
    assert reading.detail["status"] == status


def test_up_is_zero_when_refused_or_too_slow(source, refused_url):
    """A release that stops a service must fail the check, not make it inconclusive."""
    refused = measure(source, url=refused_url + "/health")
    assert value(refused) == 0 and refused.detail["reason"] == "connection refused"
    slow = measure(source, url="/slow?delay=20", timeout="300ms")  # answers long after the timeout
    assert value(slow) == 0 and slow.detail["reason"] == "timed out after 300ms"


def test_expect_status_single_and_list(source):
    assert value(measure(source, url="/nope", expect_status=404)) == 1
    assert value(measure(source, url="/stats", expect_status=[201, 204])) == 0
    assert value(measure(source, url="/moved", expect_status=[200])) == 0  # redirects are not followed


def test_head_request(source):
    assert value(measure(source, url="/stats", method="HEAD")) == 1


# --- measure: status and latency ------------------------------------------------------


def test_status_is_the_code(source):
    assert value(measure(source, url="/stats", measure="status")) == 200
    assert value(measure(source, url="/error", measure="status")) == 500
    assert value(measure(source, url="/nope", measure="status")) == 404


def test_status_of_an_unreachable_service_is_inconclusive(source, refused_url):
    reading = measure(source, url=refused_url + "/x", measure="status")
    assert reading.series == ()
    assert reading.error == f"http GET {refused_url}/x: connection refused"


def test_latency_in_seconds(source):
    latency = value(measure(source, url="/slow?delay=0.3", measure="latency", timeout="30s"))
    assert 0.3 <= latency < 30  # seconds: milliseconds would read 300 or more


def test_latency_of_an_error_page_is_inconclusive(source, server):
    reading = measure(source, url="/error", measure="latency")
    assert reading.error == f"http GET {server}/error: HTTP 500, expected 200-399"


def test_latency_timeout_is_inconclusive_and_bounded(source, server):
    started = time.monotonic()
    reading = measure(source, url="/slow?delay=20", measure="latency", timeout="300ms")
    assert time.monotonic() - started < 10  # the timeout, not the 20s answer
    assert reading.error == f"http GET {server}/slow?delay=20: timed out after 300ms"


# --- measure: json --------------------------------------------------------------------


@pytest.mark.parametrize("path, expected", [
    ("data.queue.depth", 42),
    ("items[0].value", 7.5),
    ("items[-1].value", 8),
    ("data.queue.paused", 0),
    ("backlog", 17),  # numeric strings are numbers (many status APIs quote them)
])
def test_json_value_at_path(source, path, expected):
    assert value(measure(source, url="/stats", measure="json", json_path=path)) == expected


def test_json_null_is_no_data(source):
    reading = measure(source, url="/stats", measure="json", json_path="nothing")
    assert reading.series == () and reading.error is None


@pytest.mark.parametrize("path, fragment", [
    ("data.queue.size", "json_path 'data.queue.size' not found: data.queue has no key 'size'"),
    ("items[5].value", "json_path 'items[5].value' not found: items has no [5]"),
    ("data[0]", "json_path 'data[0]' not found: data has no [0]"),
    ("label", "json_path 'label' is \"busy\", not a number"),
    ("data.queue", "json_path 'data.queue' is {"),
])
def test_json_path_problems_are_inconclusive(source, path, fragment):
    reading = measure(source, url="/stats", measure="json", json_path=path)
    assert reading.series == ()
    assert fragment in reading.error


def test_json_of_a_non_json_body_is_inconclusive(source, server):
    reading = measure(source, url="/html", measure="json", json_path="a")
    assert reading.error == f"http GET {server}/html: response is not JSON (text/html): '<html>maintenance</html>'"


def test_json_of_an_error_status_is_inconclusive(source):
    reading = measure(source, url="/error", measure="json", json_path="error")
    assert "HTTP 500, expected 200-399" in reading.error


def test_parse_json_path():
    assert parse_json_path("data.queue.depth") == ["data", "queue", "depth"]
    assert parse_json_path("items[0].value") == ["items", 0, "value"]
    assert parse_json_path("[2][0]") == [2, 0]
    assert lookup({"a": [{"b-c": 1}]}, parse_json_path("a[0].b-c")) == 1
    for bad in ("", "a..b", ".a", "a.", "a[x]", "a[0", "a b"):
        with pytest.raises(ValueError, match="malformed json_path"):
            parse_json_path(bad)


# --- secrets --------------------------------------------------------------------------


def test_header_values_never_appear_in_reasons_or_evidence(server, refused_url):
    source = make_source(base_url=server, headers={"Authorization": SECRET})
    try:
        readings = [
            measure(source, url="/echo-auth", measure="json", json_path="a"),  # 502 whose body echoes the secret
            measure(source, url="/echo-auth-200", measure="json", json_path="a", headers={"X-Api-Key": API_KEY}),
            measure(source, url="/echo-auth", measure="up"),
            measure(source, url=refused_url + "/x", measure="status", headers={"X-Api-Key": API_KEY}),
            measure(source, url="/slow?delay=20", measure="latency", timeout="200ms"),
        ]
    finally:
        source.close()
    assert all(r.error or r.detail.get("reason") for r in readings)
    for reading in readings:
        text = repr(reading)
        assert SECRET not in text and "s3cr3t" not in text and API_KEY not in text, text
    assert "***" in readings[1].error  # the echoed body is shown, with the secret masked


def test_settings_and_check_headers_are_sent(server):
    source = make_source(base_url=server, headers={"Authorization": SECRET})
    try:
        assert value(measure(source, url="/keyed", headers={"X-Api-Key": API_KEY})) == 1
        assert value(measure(source, url="/keyed")) == 0
    finally:
        source.close()


def test_password_in_base_url_is_not_shown(refused_url):
    url = refused_url.replace("http://", "http://ops:hunter22@")
    source = make_source(base_url=url)
    try:
        reading = measure(source, url="/x", measure="status")
    finally:
        source.close()
    assert "hunter22" not in reading.error and "ops:***@" in reading.error
    assert redact_url("https://example.com/a") == "https://example.com/a"


# --- urls and templates ---------------------------------------------------------------


def test_template_values_are_one_url_component(source):
    """A hostile region name cannot add a query parameter or a path segment."""
    params = render_value({"url": "/args?region={{region}}", "measure": "json", "json_path": "count"},
                          {"region": "r3&admin=1/../x"}, escape=HttpSource.escape)
    assert value(measure(source, **params)) == 1
    params["json_path"] = "args.region[0]"
    reading = measure(source, **params)
    assert reading.error and "is \"r3&admin=1/../x\", not a number" in reading.error


def test_absolute_url_ignores_base_url(source, server):
    assert value(measure(source, url=server + "/stats", measure="status")) == 200


def test_relative_url_without_base_url_is_inconclusive():
    source = make_source()
    try:
        reading = measure(source, url="/health")
    finally:
        source.close()
    assert "is relative and the http source has no base_url" in reading.error


def test_unfilled_template_is_inconclusive(source):
    assert "not filled in" in measure(source, url="/x?r={{region}}").error


def test_the_past_cannot_be_requested(source):
    reading = source.measure(Probe("c", "r3", {"url": "/stats"}), time.time() - 600)
    assert reading.error == "http probes cannot look into the past"
    window = source.measure_range(Probe("c", "r3", {"url": "/stats"}), time.time() - 1800, time.time(), 60)
    assert window.error == "http probes cannot look into the past"


# --- params, settings, registration ---------------------------------------------------


@pytest.mark.parametrize("params, fragment", [
    ({"url": "/x", "measure": "json"}, "needs json_path"),
    ({"url": "/x", "json_path": "a.b"}, "only used with measure: json"),
    ({"url": "/x", "measure": "json", "json_path": "a..b"}, "malformed json_path"),
    ({"url": "/x", "expect_status": 999}, "not an HTTP status code"),
    ({"url": "/x", "measure": "body"}, "measure"),
    ({"url": "/x", "method": "DELETE"}, "method"),
    ({"url": "/x", "timeout": "5"}, "duration"),
    ({"url": "/x", "header": {}}, "extra"),
    ({"url": "/x?r={{ region"}, "malformed template"),
])
def test_params_are_validated(params, fragment):
    with pytest.raises(ValidationError, match=fragment):
        HttpSource.Params(**params)


def test_invalid_params_at_measure_time_are_inconclusive(source):
    reading = measure(source, url="/x", measure="json")
    assert reading.error.startswith("http check 'queue-api': ")


def test_default_fail_if_for_up_checks():
    assert HttpSource.default_fail_if(HttpSource.Params(url="/x")) == "< 1"
    assert HttpSource.default_fail_if(HttpSource.Params(url="/x", measure="latency")) is None


def test_policy_with_http_checks_validates(registry):
    text = """
apiVersion: guardrail/v1
kind: Policy
name: api
on_no_data: inconclusive
checks:
  - name: api-up
    source: http
    url: /health?region={{region}}
  - name: api-queue-depth
    source: http
    url: /stats
    measure: json
    json_path: data.queue.depth
    fail_if: "> 1000"
  - name: api-latency
    source: http
    url: /stats
    measure: latency
"""
    _, problems = check_policy(parse(text, "api.yaml"), registry)
    assert len(problems) == 1 and problems[0].path.startswith("checks[2]") and "fail_if" in problems[0].path


def test_settings_reject_unknown_keys():
    with pytest.raises(ValidationError):
        HttpSource.Settings(verify_ssl=False)


def test_registered_as_builtin_source(registry):
    assert registry.sources["http"].factory is HttpSource


def test_a_template_value_of_dots_cannot_climb_out_of_its_folder():
    from guardrail_plugins.http import escape_url_component

    assert [escape_url_component(v) for v in ("..", ".", "v1.2", "a/../b")] == ["%2E%2E", "%2E", "v1.2", "a%2F..%2Fb"]
