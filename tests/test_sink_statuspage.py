"""The ``statuspage`` sink against a strict fake of Statuspage's incidents API.

Created with the first update, then its status (the same four words), message and
component statuses updated; public text by default (no queries on a public page);
``OAuth`` authentication. A 422 is final and reported in Statuspage's words.
"""

from __future__ import annotations

import pytest

from guardrail.clock import SystemClock
from guardrail.plugin.interfaces import PluginContext
from guardrail.plugin.interfaces import SinkError
from guardrail_plugins.statuspage import StatuspageSink
from support.fakes import FakeStatuspage
from support.fakes.rollouts import FAST, deliveries, run_api, sample_incidents, write_plan

KEY = "2a7b9d4aac30956d537ac76850f4d78de30994703680056cc103862d53cf8074"


@pytest.fixture
def statuspage():
    with FakeStatuspage(KEY) as fake:
        yield fake


def _settings(fake: FakeStatuspage, **extra) -> dict:
    return {"page_id": fake.page_id, "url": fake.url + "/v1", "components": ["cmp-smtp"], **FAST, **extra}


@pytest.fixture(scope="module")
def incidents(tmp_path_factory) -> list[dict]:
    return sample_incidents(tmp_path_factory.mktemp("sample"))


def test_created_then_updated_to_resolved_with_its_components(statuspage, tmp_path):
    state = tmp_path / "state" / "state.db"
    sinks = [{"plugin": "statuspage", "with": {"api_key": "${env:STATUSPAGE_KEY}", **_settings(statuspage)}}]
    result = run_api(write_plan(tmp_path / "w", sinks=sinks, scenario="relapse.yaml"), state,
                     {"STATUSPAGE_KEY": KEY})
    assert result.outcome == "rolled_back" and statuspage.violations == []
    [incident] = statuspage.incidents.values()
    statuses = [u["status"] for u in incident["incident_updates"]]
    assert statuses[:4] == ["identified", "monitoring", "identified", "monitoring"] and statuses[-1] == "resolved"
    assert incident["status"] == "resolved" and incident["name"] == "Degraded service: mail-sender"
    methods = [r.method for r in statuspage.requests]
    assert methods == ["POST"] + ["PATCH"] * (len(methods) - 1)
    components = [r.json["incident"]["components"] for r in statuspage.requests]
    assert components[0] == {"cmp-smtp": "partial_outage"} and components[-1] == {"cmp-smtp": "operational"}
    assert statuspage.components["cmp-smtp"] == "operational"
    public = " ".join(u["body"] for u in incident["incident_updates"])
    assert "errors_ratio" not in public and "r3" not in public  # no queries, no internal names
    assert all(r.headers["authorization"] == f"OAuth {KEY}" for r in statuspage.requests)
    assert {d["status"] for d in deliveries(state, "statuspage")} == {"delivered"}


def test_a_person_needed_raises_the_impact(statuspage, tmp_path):
    state = tmp_path / "state" / "state.db"
    sinks = [{"plugin": "statuspage", "with": {"api_key": KEY, **_settings(statuspage)}}]
    assert run_api(write_plan(tmp_path / "w", sinks=sinks, scenario="recurring.yaml"), state).outcome == \
        "rollback_failed"
    [incident] = statuspage.incidents.values()
    assert incident["status"] == "identified" and incident["impact"] == "critical"


def test_an_internal_page_may_carry_the_technical_details(statuspage, tmp_path, incidents):
    sink = StatuspageSink(StatuspageSink.Settings(api_key=KEY, **_settings(statuspage, technical=True)),
                          PluginContext(clock=SystemClock(), state_dir=tmp_path))
    sink.notify(incidents[0], {})
    [incident] = statuspage.incidents.values()
    assert 'max(errors_ratio{region="r3"})' in incident["incident_updates"][0]["body"]


def test_422_is_final_and_reported_in_statuspages_words(statuspage, tmp_path, incidents):
    sink = StatuspageSink(StatuspageSink.Settings(api_key=KEY, **_settings(statuspage, components=["cmp-gone"])),
                          PluginContext(clock=SystemClock(), state_dir=tmp_path))
    with pytest.raises(SinkError) as raised:
        sink.notify(incidents[0], {})
    assert not raised.value.retryable and str(raised.value) == "HTTP 422: Component cmp-gone not found"
    assert len(statuspage.requests) == 1


def test_5xx_is_retried_and_a_down_statuspage_is_spooled_for_flush(statuspage, tmp_path, cli):
    state = tmp_path / "state" / "state.db"
    sinks = [{"plugin": "statuspage", "with": {"api_key": "${env:STATUSPAGE_KEY}", **_settings(statuspage)}}]
    env = {"STATUSPAGE_KEY": KEY}
    statuspage.fail_next(500, {"error": "internal"})
    statuspage.down = True
    assert run_api(write_plan(tmp_path / "w", sinks=sinks), state, env).outcome == "rolled_back"
    assert {d["status"] for d in deliveries(state, "statuspage")} == {"pending"}
    assert len([r for r in statuspage.requests if r.method == "POST"]) >= 3  # retried in-process
    statuspage.down = False
    flushed = cli("incidents", "flush", "--state", str(state), env=env)
    assert flushed.exit_code == 0, flushed.output
    [incident] = statuspage.incidents.values()
    assert [u["status"] for u in incident["incident_updates"]] == ["identified", "monitoring", "resolved"]
