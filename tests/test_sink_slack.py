"""The ``slack`` sink against a strict fake incoming webhook.

A message per update (``text`` + Block Kit ``blocks`` within Slack's limits); 400
``invalid_payload`` is final and reported as Slack says it; 429 waits for
``Retry-After``; a Retry-After longer than ``max_wait`` is not slept but spooled.
"""

from __future__ import annotations

import time

import pytest

from guardrail.clock import SystemClock
from guardrail.plugin.interfaces import PluginContext
from guardrail.plugin.interfaces import SinkError
from guardrail_plugins.slack import SlackSink
from support.fakes import FakeSlack
from support.fakes.rollouts import FAST, deliveries, run_api, sample_incidents, write_plan
from support.fakes.slack import rate_limited


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def _sink(fake: FakeSlack, tmp_path, **extra) -> SlackSink:
    return SlackSink(SlackSink.Settings(url=fake.webhook_url, **{**FAST, **extra}),
                     PluginContext(clock=SystemClock(), state_dir=tmp_path))


@pytest.fixture(scope="module")
def incidents(tmp_path_factory) -> list[dict]:
    return sample_incidents(tmp_path_factory.mktemp("sample"))


def test_one_message_per_update_through_a_rollout(slack, tmp_path):
    state = tmp_path / "state" / "state.db"
    sinks = [{"plugin": "slack", "with": {"url": "${env:SLACK_WEBHOOK_URL}", **FAST}}]
    result = run_api(write_plan(tmp_path / "w", sinks=sinks), state, {"SLACK_WEBHOOK_URL": slack.webhook_url})
    assert result.outcome == "rolled_back" and slack.violations == []
    texts = [m["text"] for m in slack.messages]
    assert len(texts) == 3 and "[IDENTIFIED]" in texts[0] and "[MONITORING]" in texts[1] and "[RESOLVED]" in texts[2]
    blocks = slack.messages[0]["blocks"]
    assert blocks[0]["type"] == "header" and "error-ratio" in blocks[0]["text"]["text"]
    everything = str(blocks)
    assert 'max(errors_ratio{region="r3"})' in everything and "CHG-1042" in everything
    assert f"guardrail status {result.rollout_id}" in str(slack.messages[1]["blocks"][-1])
    assert "send injection paused in r3" in str(slack.messages[1]["blocks"])  # the action's outcome
    assert {d["status"] for d in deliveries(state, "slack")} == {"delivered"}


def test_block_kit_limits_hold_for_long_values(slack, tmp_path, incidents):
    incident = dict(incidents[0], title="t" * 400, decision="d" * 5000,
                    failing_checks=[dict(incidents[0]["failing_checks"][0], query="q" * 5000)] * 15)
    _sink(slack, tmp_path).notify(incident, None)
    assert slack.violations == [] and len(slack.messages) == 1


def test_invalid_payload_is_final_and_reported_as_slack_says(slack, tmp_path, incidents):
    slack.fail_next(400, "invalid_payload")
    with pytest.raises(SinkError) as raised:
        _sink(slack, tmp_path).notify(incidents[0], None)
    assert not raised.value.retryable and str(raised.value) == "HTTP 400: invalid_payload"
    assert len(slack.requests) == 1


def test_429_waits_for_retry_after(slack, tmp_path, incidents):
    slack.fail_next(*rate_limited(1))
    started = time.monotonic()
    ref = _sink(slack, tmp_path).notify(incidents[0], None)
    assert time.monotonic() - started >= 1.0 and ref == {"messages": 1}
    assert len(slack.requests) == 2 and slack.requests[1].at - slack.requests[0].at >= 1.0


def test_a_retry_after_beyond_max_wait_is_spooled_not_slept(slack, tmp_path, incidents):
    slack.fail_next(*rate_limited(120))
    started = time.monotonic()
    with pytest.raises(SinkError) as raised:
        _sink(slack, tmp_path, max_wait="60s").notify(incidents[0], None)
    # not slept: neither the 120s asked for nor max_wait, with room for a loaded machine
    assert raised.value.retryable and "wait 120s" in str(raised.value) and time.monotonic() - started < 30


def test_a_slack_that_stays_down_is_spooled_then_flushed_in_order(slack, tmp_path, cli):
    state = tmp_path / "state" / "state.db"
    env = {"SLACK_WEBHOOK_URL": slack.webhook_url}
    sinks = [{"plugin": "slack", "with": {"url": "${env:SLACK_WEBHOOK_URL}", **FAST}}]
    slack.down = True
    assert run_api(write_plan(tmp_path / "w", sinks=sinks), state, env).outcome == "rolled_back"
    assert [d["status"] for d in deliveries(state, "slack")] == ["pending"] * 3 and slack.messages == []
    slack.down = False
    flushed = cli("incidents", "flush", "--state", str(state), env=env)
    assert flushed.exit_code == 0, flushed.output
    assert [m["text"].split("]")[0].split("[")[-1] for m in slack.messages] == ["IDENTIFIED", "MONITORING", "RESOLVED"]
