"""The ``webhook`` incident sink: generic JSON, HMAC-signed when a secret is set."""

from __future__ import annotations

import hashlib
import hmac

from guardrail_plugins.webhook import sign
from support.fakes import FakeReceiver
from support.fakes.rollouts import FAST, deliveries, run_api, write_plan

SECRET = "whsec-0123456789abcdef"


def test_every_update_is_posted_and_signed_over_the_raw_body(tmp_path):
    with FakeReceiver(secret=SECRET) as receiver:
        state = tmp_path / "state" / "state.db"
        sinks = [{"plugin": "webhook", "with": {"url": receiver.hook_url, "secret": "${env:HOOK_SECRET}",
                                                "headers": {"X-Team": "mail"}, **FAST}}]
        result = run_api(write_plan(tmp_path / "w", sinks=sinks), state, {"HOOK_SECRET": SECRET})
        assert result.outcome == "rolled_back" and receiver.violations == []
        assert [b["event"] for b in receiver.received] == ["incident.identified", "incident.monitoring",
                                                           "incident.resolved"]
        assert [b["incident"]["revision"] for b in receiver.received] == [1, 2, 3]
        for request in receiver.requests:
            expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
            assert request.headers["x-guardrail-signature"] == f"sha256={expected}" == f"sha256={sign(SECRET, request.body)}"
            assert request.headers["x-team"] == "mail"
        deliveries_ids = [r.headers["x-guardrail-delivery"] for r in receiver.requests]
        assert deliveries_ids == [f"INC-{result.rollout_id}:{n}" for n in (1, 2, 3)]


def test_a_receiver_that_refuses_the_signature_is_a_final_error(tmp_path):
    with FakeReceiver(secret="another-secret") as receiver:
        state = tmp_path / "state" / "state.db"
        sinks = [{"plugin": "webhook", "with": {"url": receiver.hook_url, "secret": SECRET, **FAST}}]
        assert run_api(write_plan(tmp_path / "w", sinks=sinks), state).outcome == "rolled_back"
        rows = deliveries(state, "webhook")
        assert [r["status"] for r in rows] == ["rejected"] * 3 and rows[0]["last_error"] == "HTTP 401: bad signature"
        assert len(receiver.requests) == 3  # not retried


def test_without_a_secret_there_is_no_signature(tmp_path):
    with FakeReceiver() as receiver:
        sinks = [{"plugin": "webhook", "with": {"url": receiver.hook_url, **FAST}}]
        run_api(write_plan(tmp_path / "w", sinks=sinks), tmp_path / "state" / "state.db")
        assert receiver.received and all("x-guardrail-signature" not in r.headers for r in receiver.requests)
