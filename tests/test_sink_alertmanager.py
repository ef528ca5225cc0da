"""The ``alertmanager`` sink against a real Alertmanager (Debian's prometheus-alertmanager),
which notifies a local webhook receiver within a second (group_wait 0s, group_interval 1s).

A failed simulated rollout fires one alert and resolves it after recovery; a failure that
comes back while recovery is verified never resolves it. The rollouts run on a virtual
clock (20 simulated minutes in a second) while Alertmanager lives in real time: the sink
sends wall-clock ``startsAt``/``endsAt``, or the resolve would end in the future.
"""

from __future__ import annotations

import time
from contextlib import closing
from datetime import datetime

import httpx
import pytest

from guardrail.state.sqlite import SQLiteStore
from support.alertmanager import AlertmanagerServer
from support.fakes import FakeReceiver
from support.fakes.rollouts import journal, rollout_json, wait_for, write_plan

pytestmark = pytest.mark.alertmanager


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    receiver = FakeReceiver()
    server = AlertmanagerServer(tmp_path_factory.mktemp("alertmanager"), receiver.hook_url)
    yield server, receiver
    server.close()
    receiver.close()


def _sinks(url: str) -> list[dict]:
    return [{"plugin": "journal"},
            {"plugin": "alertmanager", "with": {"url": url, "labels": {"severity": "critical", "team": "mail"}}}]


def _notifications(receiver: FakeReceiver, rollout_id: str) -> list[dict]:
    return [n for n in list(receiver.received) if any(a["labels"].get("rollout_id") == rollout_id for a in n["alerts"])]


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_failed_rollout_fires_one_alert_then_resolves_it_after_recovery(alertmanager, tmp_path):
    server, receiver = alertmanager
    plan = write_plan(tmp_path / "work", sinks=_sinks(server.url))
    state = tmp_path / "state" / "state.db"
    before = time.time()
    doc, done = rollout_json(plan, state)
    assert done.returncode == 1, done.stderr
    rid = doc["rollout_id"]
    assert doc["incident"]["status"] == "resolved"

    seen = wait_for(lambda: (lambda ns: ns if any(n["status"] == "resolved" for n in ns) else None)(
        _notifications(receiver, rid)), timeout=60, what="a resolved notification")
    statuses = [n["status"] for n in seen]
    assert statuses[0] == "firing" and "resolved" in statuses
    assert statuses.index("firing") < statuses.index("resolved")
    [firing] = seen[0]["alerts"]
    [resolved] = next(n for n in seen if n["status"] == "resolved")["alerts"]
    assert firing["labels"] == resolved["labels"] == {
        "alertname": "GuardrailRolloutFailed", "service": "mail-sender", "rollout_id": rid, "source": "guardrail",
        "severity": "critical", "team": "mail"}
    notes = firing["annotations"]
    assert notes["incident_id"] == f"INC-{rid}" and notes["version"] == "2.1-bad" and notes["ticket"] == "CHG-1042"
    assert "r3 error-ratio: 0.9 (fails if > 0.5)" in notes["failing_checks"]
    assert 'max(errors_ratio{region="r3"})' in notes["description"] and f"guardrail status {rid}" in notes["see_more"]
    assert resolved["annotations"]["status"] == "resolved"
    # Wall-clock times, the original start kept: Alertmanager accepted the resolve (endsAt >= startsAt).
    assert resolved["startsAt"] == firing["startsAt"]
    assert before - 1 <= _epoch(firing["startsAt"]) <= _epoch(resolved["endsAt"]) <= time.time() + 1
    with closing(SQLiteStore(state)) as store:
        rows = store.deliveries(sink="alertmanager")
        assert [r["incident_status"] for r in rows] == ["identified", "monitoring", "resolved"]
        assert {r["status"] for r in rows} == {"delivered"}
    assert not [a for a in server.alerts(rollout_id=rid) if a["status"]["state"] == "active"]


def test_a_failure_that_comes_back_while_monitoring_is_never_resolved(alertmanager, tmp_path):
    server, receiver = alertmanager
    plan = write_plan(tmp_path / "work", sinks=_sinks(server.url), scenario="recurring.yaml")
    state = tmp_path / "state" / "state.db"
    doc, done = rollout_json(plan, state)
    assert done.returncode == 4, done.stderr  # recovery not achieved: a person is needed
    rid = doc["rollout_id"]
    wait_for(lambda: _notifications(receiver, rid), timeout=60, what="a firing notification")
    time.sleep(3)  # three group intervals: a resolve, if one had been sent, would be here by now
    seen = _notifications(receiver, rid)
    assert {n["status"] for n in seen} == {"firing"}
    [active] = [a for a in server.alerts(rollout_id=rid) if a["status"]["state"] == "active"]
    assert active["annotations"]["status"] == "identified"
    assert active["annotations"]["summary"].startswith("[A PERSON IS NEEDED] [IDENTIFIED]")
    assert _epoch(active["endsAt"]) > time.time() + 3600  # stays firing until a person acts
    statuses = [i["status"] for i in journal(state)]
    assert "resolved" not in statuses
    assert statuses[:3] == ["identified", "monitoring", "identified"]  # the relapse sent it back
    assert "failed again" in journal(state)[2]["note"]


def test_an_end_before_the_start_is_refused_by_alertmanager_and_not_retried(alertmanager):
    """Why the resolve keeps the original startsAt: Alertmanager answers 400, a final error."""
    server, _ = alertmanager
    body = [{"labels": {"alertname": "x"}, "startsAt": "2030-01-01T00:00:00Z", "endsAt": "2029-01-01T00:00:00Z"}]
    answer = httpx.post(f"{server.url}/api/v2/alerts", json=body, timeout=5)
    assert answer.status_code == 400 and "start time must be before end time" in answer.text
    from guardrail.plugin.sink_http import classify

    error = classify(answer)
    assert not error.retryable and "start time must be before end time" in str(error)
