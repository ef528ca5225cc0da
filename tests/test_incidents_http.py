"""``guardrail.plugin.sink_http``: which failures are worth retrying, how long to wait, and the
service's own words in the error."""

from __future__ import annotations

import socket
import time
from email.utils import formatdate
from types import SimpleNamespace

import httpx
import pytest

from guardrail.plugin.sink_http import SinkError, classify, request, service_error, wait_hint

SETTINGS = SimpleNamespace(timeout=1.0, retries=1, backoff=0.01, max_wait=5.0)


def _response(status: int, body=None, headers: dict | None = None) -> httpx.Response:
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, headers=headers)
    return httpx.Response(status, text=body or "", headers=headers)


@pytest.mark.parametrize("status, headers, retryable", [
    (408, {}, True), (429, {}, True), (500, {}, True), (502, {}, True), (503, {}, True),
    (400, {}, False), (401, {}, False), (404, {}, False), (410, {}, False), (422, {}, False),
    (403, {}, False),  # forbidden: a token without the right permission stays without it
    (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"}, True),  # GitHub's primary rate limit
])
def test_what_is_worth_retrying(status, headers, retryable):
    assert classify(_response(status, "x", headers)).retryable is retryable


@pytest.mark.parametrize("body, expected", [
    ({"status": "invalid event", "message": "Event object is invalid", "errors": ["'routing_key' is invalid"]},
     'Event object is invalid; ["\'routing_key\' is invalid"]'),
    ({"message": "Request body is not processable. Please check the errors.", "errors": {"message": "empty"}},
     'Request body is not processable. Please check the errors.; {"message": "empty"}'),
    ({"message": "Validation Failed", "errors": [{"field": "title", "code": "missing_field"}]},
     'Validation Failed; [{"code": "missing_field", "field": "title"}]'),
    ({"error": "Component x not found"}, "Component x not found"),
    ("invalid_payload", "invalid_payload"),
])
def test_the_error_is_the_services_own_words(body, expected):
    assert service_error(_response(400, body)) == expected


def test_waits_come_from_retry_after_or_the_rate_limit_reset():
    now = time.time()
    assert wait_hint(_response(429, "", {"Retry-After": "7"}), now) == 7
    assert 29 <= wait_hint(_response(503, "", {"Retry-After": formatdate(now + 30, usegmt=True)}), now) <= 31
    reset = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(now) + 90)}
    assert 89 <= wait_hint(_response(403, "", reset), now) <= 90
    assert wait_hint(_response(500, ""), now) is None
    assert wait_hint(_response(429, "", {"Retry-After": "soon"}), now) is None


def test_a_connection_error_is_retryable_and_never_names_the_url():
    # Bound but not listening: connections are refused, and no other process can take the
    # port while the test runs (as it could once the socket were closed).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(SinkError) as raised:
            request("POST", f"http://127.0.0.1:{port}/services/T0/B0/secret-token", json_body={}, settings=SETTINGS)
    assert raised.value.retryable and "cannot connect" in str(raised.value) and "(after 2 attempts)" in str(raised.value)
    assert "secret-token" not in str(raised.value)
