"""The ``pagerduty`` sink against a strict fake of the Events API v2 (tests/support/fakes).

One alert per failed rollout (one ``dedup_key``): triggered while identified, updated
while open, acknowledged only when asked, resolved after recovery. 400 "invalid event"
is final and reported in PagerDuty's words; 429 and 5xx are retried; a PagerDuty that
stays down leaves the updates spooled until ``guardrail incidents flush``.
"""

from __future__ import annotations

import time

import pytest

from guardrail.plugin.interfaces import PluginContext
from guardrail.clock import SystemClock
from guardrail.plugin.interfaces import SinkError
from guardrail_plugins.pagerduty import PagerDutySink
from support.fakes import FakePagerDuty
from support.fakes.pagerduty import RATE_LIMITED
from support.fakes.rollouts import FAST, deliveries, run_api, sample_incidents, write_plan

KEY = "R0UT1NGKEY0123456789abcdef012345"  # 32 characters, as PagerDuty's integration keys
ENV = {"PD_ROUTING_KEY": KEY}


@pytest.fixture
def pagerduty():
    with FakePagerDuty(KEY) as fake:
        yield fake


def _sink_ref(fake: FakePagerDuty, **extra) -> dict:
    return {"plugin": "pagerduty", "with": {"routing_key": "${env:PD_ROUTING_KEY}", "url": fake.enqueue_url,
                                            **FAST, **extra}}


def _sink(fake: FakePagerDuty, tmp_path, **extra) -> PagerDutySink:
    settings = PagerDutySink.Settings(routing_key=KEY, url=fake.enqueue_url, **{**FAST, **extra})
    return PagerDutySink(settings, PluginContext(clock=SystemClock(), state_dir=tmp_path))


@pytest.fixture(scope="module")
def incidents(tmp_path_factory) -> list[dict]:
    """The journal of a failed rollout that relapsed once: identified ... resolved."""
    return sample_incidents(tmp_path_factory.mktemp("sample"), scenario="relapse.yaml")


def test_one_alert_is_triggered_updated_and_resolved_through_a_rollout(pagerduty, tmp_path):
    state = tmp_path / "state" / "state.db"
    result = run_api(write_plan(tmp_path / "w", sinks=[_sink_ref(pagerduty)], scenario="relapse.yaml"), state, ENV)
    assert result.outcome == "rolled_back"
    assert pagerduty.violations == []
    events = pagerduty.bodies("POST")
    assert {e["dedup_key"] for e in events} == {f"guardrail:mail-sender:{result.rollout_id}"}
    assert [e["event_action"] for e in events] == ["trigger"] * (len(events) - 1) + ["resolve"]
    severities = [e["payload"]["severity"] for e in events[:-1]]
    assert severities[:3] == ["error", "warning", "error"]  # identified, monitoring, the relapse
    first = events[0]["payload"]
    assert first["source"] == "guardrail/mail-sender" and len(first["summary"]) <= 1024
    assert "error-ratio" in first["summary"] and first["custom_details"]["change"]["ticket"] == "CHG-1042"
    assert 'max(errors_ratio{region="r3"})' in first["custom_details"]["failing_checks"][0]
    assert "timestamp" not in first  # a virtual-clock rollout's times are not PagerDuty's business
    [alert] = pagerduty.alerts.values()
    assert alert["state"] == "resolved"
    assert {d["status"] for d in deliveries(state, "pagerduty")} == {"delivered"}


def test_monitoring_acknowledges_only_when_asked(pagerduty, tmp_path, incidents):
    sink = _sink(pagerduty, tmp_path, acknowledge_when_monitoring=True)
    ref: dict = {}
    for incident in incidents:
        ref = sink.notify(incident, ref)
    actions = [e["event_action"] for e in pagerduty.bodies("POST")]
    statuses = [i["status"] for i in incidents]
    expected = {"identified": "trigger", "monitoring": "acknowledge", "resolved": "resolve"}
    assert actions == [expected[s] for s in statuses]
    assert pagerduty.violations == [] and ref["dedup_key"] == incidents[0]["dedup_key"]


def test_a_long_summary_is_cut_to_pagerdutys_1024_characters(pagerduty, tmp_path, incidents):
    incident = dict(incidents[0], title="x" * 5000)
    _sink(pagerduty, tmp_path).notify(incident, None)
    [event] = pagerduty.bodies("POST")
    assert len(event["payload"]["summary"]) == 1024 and pagerduty.violations == []


def test_an_invalid_event_is_final_and_reported_in_pagerdutys_words(pagerduty, tmp_path, incidents):
    pagerduty.fail_next(400, {"status": "invalid event", "message": "Event object is invalid",
                              "errors": ["'payload.severity' is invalid"]})
    with pytest.raises(SinkError) as raised:
        _sink(pagerduty, tmp_path).notify(incidents[0], None)
    assert not raised.value.retryable and len(pagerduty.requests) == 1
    assert "HTTP 400: Event object is invalid" in str(raised.value) and "payload.severity" in str(raised.value)


def test_429_and_5xx_are_retried_with_backoff(pagerduty, tmp_path, incidents):
    pagerduty.fail_next(*RATE_LIMITED)
    pagerduty.fail_next(502, "bad gateway")
    started = time.monotonic()
    ref = _sink(pagerduty, tmp_path).notify(incidents[0], None)
    assert len(pagerduty.requests) == 3 and ref["last_action"] == "trigger"
    assert time.monotonic() - started >= 0.05 + 0.1  # 50ms, then 100ms
    [alert] = pagerduty.alerts.values()
    assert alert["state"] == "triggered"


def test_updates_stay_spooled_while_pagerduty_is_down_then_flush_delivers_them_in_order(pagerduty, tmp_path, cli):
    state = tmp_path / "state" / "state.db"
    pagerduty.down = True
    result = run_api(write_plan(tmp_path / "w", sinks=[{"plugin": "journal"}, _sink_ref(pagerduty)]), state, ENV)
    assert result.outcome == "rolled_back"  # the rollback and recovery did not wait for PagerDuty
    pending = deliveries(state, "pagerduty")
    assert [d["status"] for d in pending] == ["pending"] * 3
    assert "HTTP 503" in pending[0]["last_error"] and pending[0]["attempts"] >= 1
    assert {d["status"] for d in deliveries(state, "journal")} == {"delivered"}

    still_down = cli("incidents", "flush", "--state", str(state), env=ENV)
    assert still_down.exit_code == 1, still_down.output
    assert "pending" in still_down.output and "HTTP 503" in still_down.output

    pagerduty.down = False
    flushed = cli("incidents", "flush", "--state", str(state), env=ENV)
    assert flushed.exit_code == 0, flushed.output
    assert [d["status"] for d in deliveries(state, "pagerduty")] == ["delivered"] * 3
    actions = [e["event_action"] for e in pagerduty.bodies("POST") if e]
    assert actions[-3:] == ["trigger", "trigger", "resolve"]
    assert list(pagerduty.alerts.values())[0]["state"] == "resolved" and pagerduty.violations == []
    again = cli("incidents", "flush", "--state", str(state), env=ENV)
    assert again.exit_code == 0 and "nothing to deliver" in again.output
