"""Small HTTP helpers shared by plugins: JSON POST with timeouts and bounded retries."""

from __future__ import annotations

import time
from typing import Any, Callable

import httpx

from guardrail.plugin.interfaces import Outcome

RETRYABLE = {408, 429, 500, 502, 503, 504}


def post_json(url: str, body: Any, *, headers: dict[str, str] | None = None, timeout: float = 10.0,
              retries: int = 2, backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep,
              redact: Callable[[str], str] = lambda text: text) -> Outcome:
    """POST ``body`` as JSON. 5xx, 408, 429 and connection errors are retried with
    exponential backoff (``Retry-After`` honoured); other 4xx are final. The reply's
    start is quoted in a failure's reason, ``redact``-ed first (``PluginContext.redact``)."""
    attempt = 0
    while True:
        try:
            response = httpx.post(url, json=body, headers=headers or {}, timeout=timeout)
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {redact(str(exc))}" if str(exc) else type(exc).__name__
            retry_after = None
        else:
            if response.is_success:
                return Outcome(True, f"HTTP {response.status_code}")
            reason = f"HTTP {response.status_code}: {redact(response.text)[:200].strip()}"
            if response.status_code not in RETRYABLE:
                return Outcome(False, reason)
            retry_after = _retry_after(response)
        if attempt >= retries:
            return Outcome(False, f"{reason} (after {attempt + 1} attempts)")
        sleep(retry_after if retry_after is not None else backoff * (2 ** attempt))
        attempt += 1


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(float(value), 60.0) if value is not None else None
    except ValueError:
        return None
