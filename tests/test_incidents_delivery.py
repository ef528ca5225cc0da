"""Delivery never hurts the rollback: sinks that hang or fail cost their own threads'
time, updates reach each sink in order, and what was not delivered waits in the spool
for the next run or ``guardrail incidents flush``."""

from __future__ import annotations

import threading
import time

import pytest

import guardrail.incidents.delivery
from guardrail import hookimpl
from guardrail.api import Guardrail
from guardrail.plugin.manager import get_plugin_manager
from support.fakes import FakePagerDuty, FakeReceiver, FakeService, Hanging, Reply
from support.fakes.rollouts import FAST, deliveries, journal, run_api, write_plan

PD_KEY = "R0UT1NGKEY0123456789abcdef012345"


class _WallClock:
    """Records the wall-clock time of every event (the rollout itself runs on a virtual clock)."""

    def __init__(self):
        self.at: dict[str, float] = {}

    @hookimpl
    def guardrail_on_event(self, event):
        self.at.setdefault(event["kind"], time.monotonic())


def _every_sink(url: str, timeout: str) -> list[dict]:
    slow = {"timeout": timeout, "retries": 1, "backoff": "100ms"}
    return [
        {"plugin": "journal"},
        {"plugin": "alertmanager", "with": {"url": url, **slow}},
        {"plugin": "pagerduty", "with": {"routing_key": PD_KEY, "url": url + "/v2/enqueue", **slow}},
        {"plugin": "opsgenie", "with": {"api_key": "k", "url": url, **slow}},
        {"plugin": "slack", "with": {"url": url + "/services/T/B/X", **slow}},
        {"plugin": "github", "with": {"repository": "acme/mail", "token": "t", "url": url, **slow}},
        {"plugin": "statuspage", "with": {"page_id": "p", "api_key": "k", "url": url, **slow}},
        {"plugin": "webhook", "with": {"url": url + "/hook", "secret": "s3cr3t-value", **slow}},
    ]


class _Failing(FakeService):
    def handle(self, request):
        return Reply(500, {"message": "internal error"})


SINK_TIMEOUT = 60.0
"""Of each request to a sink that hangs: far longer than anything the rollout itself does,
even on a loaded machine, so the bounds below tell waiting for a sink from being slow."""


@pytest.mark.parametrize("behaviour", ["hang", "fail"])
def test_the_rollback_completes_on_time_while_every_sink_hangs_or_fails(tmp_path, behaviour):
    default_grace = guardrail.incidents.delivery.DRAIN_GRACE  # 10s
    server = Hanging() if behaviour == "hang" else _Failing()
    clock = _WallClock()
    state = tmp_path / "state" / "state.db"
    threads = set(threading.enumerate())
    try:
        api = Guardrail(state, pm=get_plugin_manager(extra_plugins=[clock]))
        result = api.rollout(write_plan(tmp_path / "w", sinks=_every_sink(server.url, f"{SINK_TIMEOUT:g}s"),
                                        on_failure={"delivery_grace": "3s"}))
        finished = time.monotonic()
        if behaviour == "hang":
            server.close()  # ends the requests still hanging
        # The drain told the deliveries still trying to stop. Let them record how far they
        # got before the store closes: on a loaded machine one may still be inside an attempt.
        deadline = time.monotonic() + 120
        while [t for t in threading.enumerate() if t not in threads and t.name.startswith("guardrail-deliver")]:
            assert time.monotonic() < deadline, "delivery threads still running"
            time.sleep(0.05)
        api.close()
    finally:
        server.close()
    assert result.outcome == "rolled_back"
    # One request to a hanging sink takes SINK_TIMEOUT, and each sink tries twice: the
    # rollback, the remediation and the whole verified recovery took a fraction of one.
    assert clock.at["state.rolled_back"] - clock.at["state.rolling_back"] < SINK_TIMEOUT / 4
    assert clock.at["state.done"] - clock.at["state.failed"] < SINK_TIMEOUT / 4
    # Finishing waited the plan's delivery_grace (3s) for deliveries in flight: not the
    # sinks' timeouts, nor the default grace.
    assert finished - clock.at["state.done"] < default_grace - 2
    assert [u["status"] for u in journal(state)] == ["identified", "monitoring", "resolved"]
    for sink in ("alertmanager", "pagerduty", "opsgenie", "slack", "github", "statuspage", "webhook"):
        rows = deliveries(state, sink)
        assert [r["status"] for r in rows] == ["pending"] * 3, (sink, rows)  # spooled, in order
        if behaviour == "fail":
            assert rows[0]["last_error"].startswith("HTTP 500: internal error"), rows[0]


def test_each_sink_sees_the_updates_in_order_even_after_failures(tmp_path):
    with FakePagerDuty(PD_KEY) as pagerduty:
        pagerduty.fail_next(503, "unavailable", times=3)  # the first update fails all its attempts
        state = tmp_path / "state" / "state.db"
        sinks = [{"plugin": "pagerduty", "with": {"routing_key": PD_KEY, "url": pagerduty.enqueue_url, **FAST}}]
        assert run_api(write_plan(tmp_path / "w", sinks=sinks, scenario="relapse.yaml"), state).outcome == \
            "rolled_back"
        summaries = [b["payload"]["summary"] if b["event_action"] == "trigger" else "resolve"
                     for b in pagerduty.bodies("POST")[3:]]
        statuses = [s.split("]")[0].lstrip("[") if s != "resolve" else "RESOLVED" for s in summaries]
        assert statuses[0] == "IDENTIFIED" and statuses[-1] == "RESOLVED"
        delivered = [r for r in deliveries(state, "pagerduty") if r["status"] == "delivered"]
        order = [r["payload"]["revision"] for r in sorted(delivered, key=lambda r: r["delivered_at"])]
        assert order == sorted(order) and order[0] == 1


def test_the_next_run_delivers_what_an_earlier_one_spooled(tmp_path):
    state = tmp_path / "state" / "state.db"
    with FakePagerDuty(PD_KEY) as pagerduty:
        sinks = [{"plugin": "pagerduty", "with": {"routing_key": PD_KEY, "url": pagerduty.enqueue_url, **FAST}}]
        pagerduty.down = True
        first = run_api(write_plan(tmp_path / "w", sinks=sinks), state)
        assert {r["status"] for r in deliveries(state, "pagerduty")} == {"pending"}
        pagerduty.down = False
        healthy = write_plan(tmp_path / "w", name="healthy.yaml", change={"version": "2.0", "previous": "1.0"})
        assert run_api(healthy, state).outcome == "promoted"  # another rollout on the same state file
        assert [r["status"] for r in deliveries(state, "pagerduty")] == ["delivered"] * 3
        [alert] = pagerduty.alerts.values()
        assert alert["state"] == "resolved" and alert["events"][0]["dedup_key"].endswith(first.rollout_id)


def test_a_refused_update_can_be_flushed_again_once_the_secret_is_fixed(tmp_path, cli):
    state = tmp_path / "state" / "state.db"
    with FakeReceiver(secret="the-right-secret") as receiver:
        sinks = [{"plugin": "webhook", "with": {"url": receiver.hook_url, "secret": "${env:HOOK_SECRET}", **FAST}}]
        run_api(write_plan(tmp_path / "w", sinks=sinks), state, {"HOOK_SECRET": "an-old-secret"})
        assert {r["status"] for r in deliveries(state, "webhook")} == {"rejected"}
        plain = cli("incidents", "flush", "--state", str(state), env={"HOOK_SECRET": "the-right-secret"})
        assert plain.exit_code == 1 and "nothing to deliver" not in plain.output  # rejected ones wait for --rejected
        fixed = cli("incidents", "flush", "--rejected", "--state", str(state), env={"HOOK_SECRET": "the-right-secret"})
        assert fixed.exit_code == 0, fixed.output
        assert [b["event"] for b in receiver.received] == ["incident.identified", "incident.monitoring",
                                                           "incident.resolved"]


def test_flush_says_why_when_the_plan_is_gone(tmp_path, cli):
    state = tmp_path / "state" / "state.db"
    with FakePagerDuty(PD_KEY) as pagerduty:
        pagerduty.down = True
        sinks = [{"plugin": "pagerduty", "with": {"routing_key": PD_KEY, "url": pagerduty.enqueue_url, **FAST}}]
        plan = write_plan(tmp_path / "w", sinks=sinks)
        run_api(plan, state)
    plan.unlink()
    flushed = cli("incidents", "flush", "--state", str(state))
    assert flushed.exit_code == 1
    assert "cannot rebuild the sinks of rollout" in flushed.output and "file not found" in flushed.output
    assert {r["status"] for r in deliveries(state, "pagerduty")} == {"pending"}
