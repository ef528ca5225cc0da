"""HTTP for incident sinks: timeouts, retries that respect the service, honest errors.

Why not ``guardrail.plugin.http.post_json``: a sink must tell a *retryable* failure (the
service is down, slow or rate-limiting us: keep the notification in the spool and
try again) from a *final* one (the service refused the request: retrying the same
bytes cannot help, say why in the service's own words). Raised as ``SinkError``::

    SinkError                 retryable=False: 4xx other than 408/429 (bad key, bad payload)
                              retryable=True:  timeouts, connection errors, 408, 429, 5xx,
                                               GitHub's 403 with x-ratelimit-remaining: 0

Waits: ``Retry-After`` (seconds or an HTTP date), else GitHub's ``x-ratelimit-reset``
(epoch seconds) when ``x-ratelimit-remaining`` is 0, else exponential backoff. A wait
longer than ``max_wait`` is not slept in-process: the delivery stays spooled for the
next run or ``guardrail incidents flush``. Sleeping waits on ``stop`` so a process
that is shutting down is never held by a backoff.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from guardrail.version import __version__
from guardrail.plugin.interfaces import IncidentSink, SinkError
from guardrail.plugin.types import Duration

RETRYABLE_STATUS = {408, 429}
USER_AGENT = f"guardrail/{__version__}"


class HttpSettings(BaseModel):
    """Delivery knobs shared by every HTTP incident sink."""

    model_config = ConfigDict(extra="forbid")
    timeout: Duration = Field(10.0, gt=0, description="per request")
    retries: int = Field(2, ge=0, le=10, description="in-process retries of a retryable failure")
    backoff: Duration = Field(1.0, ge=0, description="first retry delay; doubles each time")
    max_wait: Duration = Field(60.0, ge=0, description="longest Retry-After/rate-limit wait slept in-process")


class HttpSink(IncidentSink):
    """Base of the HTTP sinks: ``self.request`` with the settings' retry policy."""

    Settings: ClassVar[type[BaseModel]] = HttpSettings

    def __init__(self, settings: BaseModel, context: Any):
        super().__init__(settings, context)
        self.stop = threading.Event()
        """Set by the deliverer when the process shuts down: backoffs end at once."""

    def request(self, method: str, url: str, *, json_body: Any = None, content: bytes | None = None,
                headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> httpx.Response:
        return request(method, url, json_body=json_body, content=content, headers=headers, params=params,
                       settings=self.settings, stop=self.stop, redact=self.context.redact)


def request(method: str, url: str, *, settings: Any, json_body: Any = None, content: bytes | None = None,
            headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
            stop: threading.Event | None = None, redact: Any = None) -> httpx.Response:
    """Send one request, retrying what is worth retrying; return the 2xx response or raise ``SinkError``.
    A reply quoted in the error is ``redact``-ed before it is shortened (``PluginContext.redact``)."""
    stop = stop or threading.Event()
    sent_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    if json_body is not None:
        content = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
        sent_headers.setdefault("Content-Type", "application/json")
    attempt = 0
    while True:
        try:
            response = httpx.request(method, url, content=content, headers=sent_headers, params=params,
                                     timeout=settings.timeout)
        except httpx.TimeoutException:
            error = SinkError(f"no answer within {settings.timeout:g}s", retryable=True)
            wait = None
        except httpx.HTTPError as exc:  # refused, reset, DNS: the message never names the URL (it may hold a secret)
            error = SinkError(f"cannot connect: {type(exc).__name__}: {exc}".rstrip(": "), retryable=True)
            wait = None
        else:
            if response.is_success:
                return response
            error = classify(response, redact)
            wait = wait_hint(response)
        if not error.retryable:
            raise error
        delay = wait if wait is not None else settings.backoff * (2 ** attempt)
        if attempt >= settings.retries:
            raise SinkError(f"{error} (after {attempt + 1} attempt{'s' if attempt else ''})", retryable=True,
                            status=error.status)
        if delay > settings.max_wait:
            raise SinkError(f"{error}; the service asks to wait {delay:.0f}s: left in the spool", retryable=True,
                            status=error.status)
        if stop.wait(delay):
            raise SinkError(f"{error} (shutting down before the next attempt)", retryable=True, status=error.status)
        attempt += 1


def classify(response: httpx.Response, redact: Any = None) -> SinkError:
    """The failure a non-2xx response means, in the service's own words."""
    status = response.status_code
    text = service_error(response, redact=redact)
    rate_limited = status == 403 and response.headers.get("x-ratelimit-remaining") == "0"
    retryable = status in RETRYABLE_STATUS or status >= 500 or rate_limited
    return SinkError(f"HTTP {status}: {text}" if text else f"HTTP {status}", retryable=retryable, status=status)


def service_error(response: httpx.Response, limit: int = 300, redact: Any = None) -> str:
    """The error text a service put in its answer: ``message``/``error``/``errors`` of a
    JSON body (PagerDuty, Opsgenie, GitHub, Statuspage), else the text (Slack)."""
    redact = redact or (lambda text: text)
    try:
        body = response.json()
    except ValueError:
        return redact(response.text).strip()[:limit]
    parts: list[str] = []
    if isinstance(body, dict):
        for key in ("message", "error", "errors", "status"):
            value = body.get(key)
            if value and (key != "status" or not parts):
                parts.append(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
    text = "; ".join(parts) if parts else json.dumps(body, sort_keys=True)
    return redact(text)[:limit]


def wait_hint(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the service asks us to wait, if it says: Retry-After, or GitHub's reset."""
    now = time.time() if now is None else now
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                return None
    if response.headers.get("x-ratelimit-remaining") == "0" and response.headers.get("x-ratelimit-reset"):
        try:
            return max(0.0, float(response.headers["x-ratelimit-reset"]) - now)
        except ValueError:
            return None
    return None


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marking the cut (services reject longer fields)."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"
