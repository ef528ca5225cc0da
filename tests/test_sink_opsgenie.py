"""The ``opsgenie`` sink against a strict fake of Opsgenie's Alert API v2.

Created once with the dedup key as ``alias``, updated with notes, escalated to P1 when a
person is needed, closed by alias on resolve; ``GenieKey`` authentication. A 422 is
final and reported in Opsgenie's words; 429/5xx are retried; a down Opsgenie is spooled.
"""

from __future__ import annotations

import pytest

from guardrail.clock import SystemClock
from guardrail.plugin.interfaces import PluginContext
from guardrail.plugin.interfaces import SinkError
from guardrail_plugins.opsgenie import OpsgenieSink
from support.fakes import FakeOpsgenie
from support.fakes.opsgenie import unprocessable
from support.fakes.rollouts import FAST, deliveries, run_api, sample_incidents, write_plan

KEY = "eb243592-faa2-4ba2-a551-1afdf565c889"
ENV = {"OPSGENIE_KEY": KEY}


@pytest.fixture
def opsgenie():
    with FakeOpsgenie(KEY) as fake:
        yield fake


def _sink_ref(fake: FakeOpsgenie) -> dict:
    return {"plugin": "opsgenie", "with": {"api_key": "${env:OPSGENIE_KEY}", "url": fake.url,
                                           "responders": [{"type": "team", "name": "mail-oncall"}], **FAST}}


def _sink(fake: FakeOpsgenie, tmp_path) -> OpsgenieSink:
    return OpsgenieSink(OpsgenieSink.Settings(api_key=KEY, url=fake.url, **FAST),
                        PluginContext(clock=SystemClock(), state_dir=tmp_path))


@pytest.fixture(scope="module")
def incidents(tmp_path_factory) -> list[dict]:
    return sample_incidents(tmp_path_factory.mktemp("sample"))


def test_created_by_alias_noted_and_closed_through_a_rollout(opsgenie, tmp_path):
    state = tmp_path / "state" / "state.db"
    result = run_api(write_plan(tmp_path / "w", sinks=[_sink_ref(opsgenie)], scenario="relapse.yaml"), state, ENV)
    assert result.outcome == "rolled_back"
    assert opsgenie.violations == []
    alias = f"guardrail:mail-sender:{result.rollout_id}"
    [alert] = opsgenie.alerts.values()
    assert list(opsgenie.alerts) == [alias] and alert["status"] == "closed" and alert["count"] == 1
    create = alert["create"]
    assert create["priority"] == "P2" and len(create["message"]) <= 130 and create["entity"] == "mail-sender"
    assert 'max(errors_ratio{region="r3"})' in create["description"]
    assert create["responders"] == [{"type": "team", "name": "mail-oncall"}]
    paths = [(r.method, r.path.rsplit("/", 1)[-1], r.query.get("identifierType")) for r in opsgenie.requests]
    assert paths[0] == ("POST", "alerts", None) and paths[-1] == ("POST", "close", "alias")
    assert {p for p in paths[1:-1]} == {("POST", "notes", "alias")}
    assert any("failed again" in (note or "") for note in alert["notes"])  # the relapse is said
    assert all(r.headers["authorization"] == f"GenieKey {KEY}" for r in opsgenie.requests)
    assert {d["status"] for d in deliveries(state, "opsgenie")} == {"delivered"}


def test_a_person_needed_raises_the_priority_to_p1(opsgenie, tmp_path):
    state = tmp_path / "state" / "state.db"
    result = run_api(write_plan(tmp_path / "w", sinks=[_sink_ref(opsgenie)], scenario="recurring.yaml"), state, ENV)
    assert result.outcome == "rollback_failed"
    [alert] = opsgenie.alerts.values()
    assert alert["status"] == "open" and alert["priority"] == "P1" and opsgenie.violations == []


def test_422_is_final_and_reported_in_opsgenies_words(opsgenie, tmp_path, incidents):
    reply = unprocessable("message", "Message can not be empty.")
    opsgenie.fail_next(reply.status, reply.body)
    with pytest.raises(SinkError) as raised:
        _sink(opsgenie, tmp_path).notify(incidents[0], {})
    assert not raised.value.retryable and len(opsgenie.requests) == 1
    assert "HTTP 422: Request body is not processable" in str(raised.value)
    assert "Message can not be empty." in str(raised.value)


def test_a_rejected_update_is_recorded_and_the_next_ones_still_go(opsgenie, tmp_path):
    state = tmp_path / "state" / "state.db"
    opsgenie.fail_next(422, unprocessable("message", "Message can not be empty.").body)
    result = run_api(write_plan(tmp_path / "w", sinks=[_sink_ref(opsgenie)]), state, ENV)
    assert result.outcome == "rolled_back"
    rows = deliveries(state, "opsgenie")
    assert [r["status"] for r in rows] == ["rejected", "delivered", "delivered"]
    assert "Message can not be empty." in rows[0]["last_error"] and rows[0]["attempts"] == 1
    assert [a["status"] for a in opsgenie.alerts.values()] == ["closed"]  # the next update created it


def test_429_and_5xx_are_retried(opsgenie, tmp_path, incidents):
    opsgenie.fail_next(429, {"message": "Too many requests", "took": 0.0})
    opsgenie.fail_next(500, {"message": "Internal error"})
    ref = _sink(opsgenie, tmp_path).notify(incidents[0], {})
    assert ref["created"] and len(opsgenie.requests) == 3 and len(opsgenie.alerts) == 1


def test_a_down_opsgenie_leaves_the_updates_spooled_for_flush(opsgenie, tmp_path, cli):
    state = tmp_path / "state" / "state.db"
    opsgenie.down = True
    assert run_api(write_plan(tmp_path / "w", sinks=[_sink_ref(opsgenie)]), state, ENV).outcome == "rolled_back"
    assert {d["status"] for d in deliveries(state, "opsgenie")} == {"pending"}
    opsgenie.down = False
    flushed = cli("incidents", "flush", "--state", str(state), env=ENV)
    assert flushed.exit_code == 0, flushed.output
    assert [a["status"] for a in opsgenie.alerts.values()] == ["closed"] and opsgenie.violations == []
