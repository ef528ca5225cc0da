"""The ``tcp`` source against real sockets on 127.0.0.1: SMTP-like servers that greet
with ``220``, one that refuses with ``554``, closed ports, and servers that accept a
connection and never say a word."""

from __future__ import annotations

import re
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from guardrail.clock import SystemClock
from guardrail.plugin.interfaces import PluginContext, Probe, Reading
from guardrail.language.loader import check_policy
from guardrail.language.types import render_value
from guardrail.language.yamldoc import parse
from guardrail_plugins.tcp import Endpoint, TcpSource, parse_target

GREETING = b"220 mx ESMTP\r\n"

STATE = Path(tempfile.gettempdir())  # neither source keeps state


class Fleet:
    """Loopback servers that live as long as one test."""

    def __init__(self):
        self._listeners: list[socket.socket] = []
        self._held: list[socket.socket] = []
        self._stop = threading.Event()

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listeners.append(listener)
        return listener

    def _serve(self, greet) -> str:
        listener = self._listen()

        def loop():
            while not self._stop.is_set():
                try:
                    conn, _ = listener.accept()
                except (socket.timeout, OSError):
                    continue
                greet(conn)

        threading.Thread(target=loop, daemon=True).start()
        return f"127.0.0.1:{listener.getsockname()[1]}"

    def smtp(self, banner: bytes = GREETING) -> str:
        """Greets with ``banner`` and closes."""
        def greet(conn):
            with conn:
                conn.sendall(banner)
        return self._serve(greet)

    def silent(self) -> str:
        """Accepts and never answers (the connection stays open until the test ends)."""
        return self._serve(self._held.append)

    def hangup(self) -> str:
        """Accepts and closes at once, without a greeting."""
        return self._serve(lambda conn: conn.close())

    def refused(self) -> str:
        """A port nobody listens on: bound but never listening, so connections are refused,
        and held until the test ends so that no other process can take it meanwhile."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        self._listeners.append(s)
        return f"127.0.0.1:{s.getsockname()[1]}"

    def close(self):
        self._stop.set()
        for s in self._listeners + self._held:
            s.close()


@pytest.fixture
def fleet():
    f = Fleet()
    yield f
    f.close()


def make_source(**settings) -> TcpSource:
    context = PluginContext(SystemClock(), STATE)
    return TcpSource(TcpSource.Settings(**settings), context)


@pytest.fixture
def source():
    s = make_source()
    yield s
    s.close()


def measure(source: TcpSource, **params) -> Reading:
    return source.measure(Probe("smtp-port-25", "r3", params), time.time())


# --- results and reasons --------------------------------------------------------------


def test_all_targets_answering_is_ratio_one(source, fleet):
    hosts = [fleet.smtp() for _ in range(3)]
    reading = measure(source, targets=hosts, banner="^220", timeout="1s")
    assert reading.error is None
    assert [s.value for s in reading.series] == [1.0]
    assert reading.detail["checked"] == 3
    assert reading.detail["succeeded"] == 3
    assert reading.detail["failing"] == {}


def test_refused_port_is_a_failing_target_with_reason(source, fleet):
    closed = fleet.refused()
    reading = measure(source, targets=[closed], timeout="1s")
    assert reading.series[0].value == 0.0
    assert reading.detail["failing"] == {closed: "refused"}


def test_banner_that_does_not_match_names_both(source, fleet):
    rejecting = fleet.smtp(b"554 no\r\n")
    reading = measure(source, targets=[rejecting], banner="^220", timeout="1s")
    assert reading.detail["failing"] == {rejecting: "banner '554 no' does not match '^220'"}


def test_a_plain_prefix_works_as_banner(source, fleet):
    reading = measure(source, targets=[fleet.smtp()], banner="220 mx", timeout="1s")
    assert reading.series[0].value == 1.0


def test_silent_server_times_out_waiting_for_the_banner(source, fleet):
    quiet = fleet.silent()
    started = time.monotonic()
    reading = measure(source, targets=[quiet], banner="^220", timeout="0.3s")
    assert time.monotonic() - started < TcpSource.Params(targets="x:25").timeout  # 0.3s, not the default
    assert reading.detail["failing"] == {quiet: "timed out after 300ms waiting for a banner"}


def test_without_banner_a_connection_is_success(source, fleet):
    reading = measure(source, targets=[fleet.silent()], timeout="0.3s")
    assert reading.series[0].value == 1.0


def test_peer_closing_without_greeting(source, fleet):
    rude = fleet.hangup()
    reading = measure(source, targets=[rude], banner="^220", timeout="1s")
    assert reading.detail["failing"] == {rude: "closed before sending a banner"}


def test_one_failing_host_of_five_is_one_finding(fleet, registry):
    """The DuoCircle shape, scaled down: the check yields one value (0.8) and one
    finding whose evidence lists the failing host, not one finding per host."""
    healthy = [fleet.smtp() for _ in range(4)]
    broken = fleet.silent()
    policy_text = """
apiVersion: guardrail/v1
kind: Policy
name: smtp
on_no_data: inconclusive
checks:
  - name: smtp-port-25
    source: tcp
    targets: "{{smtp_hosts}}"
    banner: "^220"
    timeout: 0.3s
    min_success_ratio: 0.95
"""
    policy, problems = check_policy(parse(policy_text, "smtp.yaml"), registry)
    assert problems == []
    check = policy.checks[0]
    assert str(check.fail_if) == "< 0.95"  # implied by min_success_ratio

    params = render_value(check.params, {"smtp_hosts": healthy[:2] + [broken] + healthy[2:], "region": "r3"})
    source = registry.sources["tcp"].factory(TcpSource.Settings(), PluginContext(SystemClock(), STATE))
    try:
        reading = source.measure(Probe(check.name, "r3", params), time.time())
    finally:
        source.close()
    assert len(reading.series) == 1
    assert reading.series[0].value == pytest.approx(0.8)
    assert check.fail_if.holds(reading.series[0].value)
    assert list(reading.detail["failing"]) == [broken]
    assert reading.detail["checked"] == 5 and reading.detail["succeeded"] == 4


# --- targets ----------------------------------------------------------------------------


def test_targets_as_comma_separated_string_with_default_port(source, fleet):
    a, b = fleet.smtp(), fleet.smtp()
    port_a = int(a.rsplit(":", 1)[1])
    reading = measure(source, targets=f"127.0.0.1, {b}", port=port_a, timeout="1s")
    assert reading.detail["checked"] == 2
    assert reading.series[0].value == 1.0


def test_duplicate_targets_are_probed_once(source, fleet):
    host = fleet.smtp()
    reading = measure(source, targets=[host, host, f" {host} "], timeout="1s")
    assert reading.detail["checked"] == 1


def test_no_targets_is_no_data(source):
    for empty in ([], "", " , "):
        reading = measure(source, targets=empty, port=25)
        assert reading.series == () and reading.error is None


def test_target_without_port_after_rendering_is_inconclusive(source):
    reading = measure(source, targets=["mx1.example"])
    assert reading.series == ()
    assert "no port" in reading.error


def test_unfilled_template_is_inconclusive(source):
    reading = measure(source, targets="{{smtp_hosts}}", port=25)
    assert "not filled in" in reading.error


@pytest.mark.parametrize("text, default, expected", [
    ("mx1.example:2525", 25, Endpoint("mx1.example", 2525)),
    ("mx1.example", 25, Endpoint("mx1.example", 25)),
    ("10.0.0.1:25", None, Endpoint("10.0.0.1", 25)),
    ("[::1]:25", None, Endpoint("::1", 25)),
    ("[::1]", 587, Endpoint("::1", 587)),
    ("::1", 25, Endpoint("::1", 25)),
])
def test_parse_target(text, default, expected):
    assert parse_target(text, default) == expected


@pytest.mark.parametrize("text, fragment", [
    ("mx1.example", "has no port"),
    ("mx1.example:smtp", "port must be a number"),
    ("mx1.example:70000", "port must be a number"),
    (":25", "no host"),
    ("[::1", "expected [ipv6]:port"),
])
def test_parse_target_rejects(text, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_target(text, None)


def test_ipv6_endpoint_is_shown_bracketed():
    assert str(Endpoint("::1", 25)) == "[::1]:25"


# --- params and settings --------------------------------------------------------------


def test_params_reject_unknown_keys_bad_regex_and_literal_targets_without_port():
    with pytest.raises(ValidationError, match="extra"):
        TcpSource.Params(targets=["a:25"], min_sucess_ratio=0.9)
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        TcpSource.Params(targets=["a:25"], banner="^(220")
    with pytest.raises(ValidationError, match="has no port"):
        TcpSource.Params(targets=["mx1.example"])
    with pytest.raises(ValidationError):
        TcpSource.Params(targets=["a:25"], min_success_ratio=1.5)
    # templates are checked after rendering, not before
    assert TcpSource.Params(targets="{{smtp_hosts}}").timeout == 5.0


def test_default_fail_if():
    assert TcpSource.default_fail_if(TcpSource.Params(targets="{{smtp_hosts}}", port=25, min_success_ratio=0.95)) == "< 0.95"
    assert TcpSource.default_fail_if(TcpSource.Params(targets="{{smtp_hosts}}", port=25, min_success_ratio=1)) == "< 1"
    assert TcpSource.default_fail_if(TcpSource.Params(targets="{{smtp_hosts}}", port=25)) is None


def test_check_without_ratio_or_fail_if_is_reported_by_validate(registry):
    text = """
apiVersion: guardrail/v1
kind: Policy
name: smtp
checks:
  - name: smtp-port-25
    source: tcp
    targets: ["mx1.example:25"]
"""
    _, problems = check_policy(parse(text, "p.yaml"), registry)
    assert any("fail_if" in p.path for p in problems)


def test_settings_reject_unknown_keys():
    with pytest.raises(ValidationError):
        TcpSource.Settings(concurency=4)


def test_registered_as_builtin_source(registry):
    assert registry.sources["tcp"].factory is TcpSource


# --- time -------------------------------------------------------------------------------


def test_the_past_cannot_be_probed(source, fleet):
    host = fleet.smtp()
    reading = source.measure(Probe("c", "r3", {"targets": [host]}), time.time() - 3600)
    assert reading.error == "tcp probes cannot look into the past"
    assert source.measure(Probe("c", "r3", {"targets": [host]}), time.time() - 30).error is None
    window = source.measure_range(Probe("c", "r3", {"targets": [host]}), time.time() - 1800, time.time(), 60)
    assert window.error == "tcp probes cannot look into the past"


# --- concurrency ------------------------------------------------------------------------


def test_targets_are_probed_concurrently(fleet):
    """20 servers that never greet, 0.15 s each: sequentially ~3 s, concurrently about
    one timeout. Both runs are measured here, on the same machine and targets."""
    quiet = [fleet.silent() for _ in range(20)]

    def timed(concurrency: int) -> float:
        source = make_source(concurrency=concurrency)
        try:
            started = time.monotonic()
            reading = measure(source, targets=quiet, banner="^220", timeout="150ms")
            elapsed = time.monotonic() - started
        finally:
            source.close()
        assert reading.series[0].value == 0.0
        assert len(reading.detail["failing"]) == 20
        return elapsed

    sequential = timed(1)
    assert sequential >= 20 * 0.15 * 0.9
    # The best of up to three concurrent runs: a loaded machine can stall one run, but it
    # can never make a prober that waits for each target in turn finish in a fifth of that.
    concurrent = []
    while len(concurrent) < 3 and not (concurrent and min(concurrent) < sequential / 5):
        concurrent.append(timed(32))
    assert min(concurrent) < sequential / 5, (sequential, concurrent)
