"""What went wrong with a Prometheus request, in a few words.

prometheus-api-client raises unrelated exception types; ``describe`` turns each into
the cause an inconclusive reading carries (the ``prometheus`` source adds the source
URL, without credentials, and the query)::

    requests.exceptions.RequestException
    ├── ConnectionError          refused, DNS, reset       "cannot connect (Connection refused)"
    │   ├── ConnectTimeout       no TCP connection in time "cannot connect within 10s"
    │   └── SSLError             bad certificate           "TLS error: ..."
    ├── Timeout / ReadTimeout    no answer in time         "no answer within 10s"
    └── RetryError               5xx after urllib3 retries (the library's default policy)
    PrometheusApiClientException any non-200 answer        "HTTP 400 bad_data: 1:5: parse error: ..."
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

RETRY_STATUS = frozenset({502, 503, 504})
_API_ERROR = re.compile(r"HTTP Status Code (\d+) \((b(['\"]).*\3)\)\s*$", re.DOTALL)


class Failed(RuntimeError):
    """A reading that cannot be had; ``reason`` names the source, the query and the cause."""

    @property
    def reason(self) -> str:
        return str(self.args[0])


class Unexpected(Exception):
    """A successful answer guardrail cannot use as a number (a string, a range vector)."""


class Status(Exception):
    """A raw answer with a status worth retrying (502/503/504)."""

    def __init__(self, response: Any):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def describe(exc: Exception, timeout: float, redact: Callable[[str], str] = lambda text: text) -> str:
    """The cause of a failed request, as a reading reports it (a quoted reply ``redact``-ed
    before it is shortened: ``PluginContext.redact``)."""
    import requests

    limit = f"{timeout:g}s"
    if isinstance(exc, Status):
        return f"HTTP {exc.response.status_code}: {api_error(exc.response.status_code, exc.response.content, redact)}"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"cannot connect within {limit}"
    if timed_out(exc):
        return f"no answer within {limit} (timeout)"
    if isinstance(exc, requests.exceptions.RetryError):
        found = re.search(r"ResponseError\('([^']*)'\)", str(exc))
        return f"server errors until retries ran out ({found.group(1) if found else 'retry error'})"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error: {innermost(exc)}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot connect ({innermost(exc)})"
    match = _API_ERROR.match(str(exc))
    if match:
        try:
            body = ast.literal_eval(match.group(2))
        except (ValueError, SyntaxError):
            body = match.group(2).encode()
        return f"HTTP {match.group(1)}: {api_error(int(match.group(1)), body, redact)}"
    if isinstance(exc, (ValueError, KeyError, TypeError)):  # a 200 that is not Prometheus JSON
        return f"the answer is not Prometheus API JSON ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def timed_out(exc: Exception) -> bool:
    """requests raises ``ConnectionError("Read timed out")`` rather than ``ReadTimeout``
    when the time runs out while the body is read."""
    import requests

    return isinstance(exc, requests.exceptions.Timeout) or (
        isinstance(exc, requests.exceptions.ConnectionError) and "timed out" in str(exc))


def retryable(exc: Exception) -> bool:
    import requests

    if isinstance(exc, Status):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError):
        return True
    match = _API_ERROR.match(str(exc))
    return bool(match) and int(match.group(1)) in RETRY_STATUS


def rejected(exc: BaseException | None) -> bool:
    """Prometheus refused the query itself (HTTP 400 or 422: a parse or type error)."""
    match = _API_ERROR.match(str(exc)) if exc is not None else None
    return bool(match) and int(match.group(1)) in (400, 422)


def api_error(status: int, body: bytes, redact: Callable[[str], str] = lambda text: text) -> str:
    """Prometheus's ``errorType: error`` from an error body, else the body's start."""
    text = redact(body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body))
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("error"):
        kind = data.get("errorType")
        return f"{kind}: {data['error']}" if kind and status not in (400, 422) else str(data["error"])
    short = " ".join(text.split())[:200]
    return short or "(empty body)"


def innermost(exc: BaseException) -> str:
    """``Connection refused`` rather than three nested reprs with the full URL."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text) or re.search(r"\[SSL[^\]]*\] ([^'\")(]+)", text)
    if found:
        return found.group(1).strip()
    for pattern in (r"Failed to resolve '[^']+'", r"RemoteDisconnected\('([^']+)'", r"Connection aborted"):
        found = re.search(pattern, text)
        if found:
            return found.group(found.lastindex or 0)
    return type(exc).__name__


def without_credentials(url: str) -> str:
    """The URL as shown in messages: ``https://user:pass@host`` loses ``user:pass@``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
