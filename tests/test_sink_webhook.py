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


# The webhook deployer and action: template values are escaped for where they land in the URL.

class RequestLines:
    """A real HTTP server on loopback that records each request line exactly as received."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.lines: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                recorder.lines.append(self.requestline)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


HOSTILE_REGION = "x/../../admin?y=1&z=2#frag"
HOSTILE_VERSION = "2.0&admin=true#x"


def _webhook(kind, url: str, tmp_path):
    from guardrail.clock import SystemClock
    from guardrail.plugin.interfaces import PluginContext
    from guardrail_plugins.webhook import WebhookAction, WebhookDeployer

    factory = {"deployer": WebhookDeployer, "action": WebhookAction}[kind]
    return factory(factory.Settings.model_validate({"url": url, "retries": 0}),
                   PluginContext(clock=SystemClock(), state_dir=tmp_path))


def test_deployer_url_values_cannot_add_a_segment_a_parameter_or_a_fragment(tmp_path):
    from guardrail.plugin.interfaces import Target

    server = RequestLines()
    try:
        deployer = _webhook("deployer", server.url + "/deploy/{{region}}/{{team}}?version={{version}}&from={{previous}}",
                            tmp_path)
        outcome = deployer.deploy(Target(service="mail", region=HOSTILE_REGION, version=HOSTILE_VERSION,
                                         previous="1.0", action="deploy", key="k1", vars={"team": ".."}))
    finally:
        server.close()
    assert outcome.ok, outcome.detail
    assert server.lines == ["POST /deploy/x%2F..%2F..%2Fadmin%3Fy%3D1%26z%3D2%23frag/%2E%2E"
                            "?version=2.0%26admin%3Dtrue%23x&from=1.0 HTTP/1.1"]


def test_action_url_values_are_escaped_and_a_host_cannot_be_injected(tmp_path):
    from guardrail.plugin.interfaces import ActionRun

    server = RequestLines()
    try:
        action = _webhook("action", server.url + "/pause/{{region}}?rollout={{rollout_id}}#{{service}}", tmp_path)
        run = ActionRun(rollout_id="r-1&admin=true", service="mail#x", phase="failure", region=HOSTILE_REGION, key="k")
        assert action.run(run).ok
        hosted = _webhook("action", "http://{{region}}.example/pause", tmp_path).run(run)
    finally:
        server.close()
    assert server.lines == ["POST /pause/x%2F..%2F..%2Fadmin%3Fy%3D1%26z%3D2%23frag?rollout=r-1%26admin%3Dtrue HTTP/1.1"]
    assert not hosted.ok and "cannot be filled into the host name of a URL" in hosted.detail
