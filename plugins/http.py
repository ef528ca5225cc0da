"""``http`` source: one request per evaluation; the value is the status code, the
latency, a number found in a JSON body, or whether the service is up.

``measure`` says which:

- ``up``: 1 when the status is expected (``expect_status``, default any 200-399),
  else 0. A refused connection or a timeout is a service that is down, so it is 0,
  not "no data": this is the kind that catches a release which stops a service.
- ``status``: the status code itself.
- ``latency``: seconds from sending the request to the end of the body.
- ``json``: the number at ``json_path`` (``data.queue.depth``, ``items[0].value``).

For ``status``, ``latency`` and ``json`` any transport failure (refused, timed out,
TLS), an unexpected status (for ``latency`` and ``json``: an error page's latency or
body is not the signal), a body that is not JSON or a path that is not there gives an
inconclusive reading naming the URL and the cause. Header values are secrets (auth
tokens from ``${env:...}``): no reason or evidence ever contains them, even when a
server echoes them back in an error body.

Policies hold no addresses: a check's ``url`` is usually a path such as
``/health/queue?region={{region}}``, joined to the plan's ``sources.http.base_url``
(overridable per region). Template values are percent-encoded, so a variable is one
URL component and cannot add a path segment or a query parameter.

A request answers for *now* only: asked about a time in the past (a baseline window,
a backtest) the source returns an inconclusive reading instead of pretending.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any, Callable, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from guardrail import Duration, Probe, Reading, Source, Template, format_duration, hookimpl
from guardrail.plugin.templates import url_segment

PAST_TOLERANCE = 60.0
"""How far before the wall clock ``at`` may be and still count as *now*."""

_JSON_PATH = re.compile(r"^(?:[^.\[\]\s]+|\[-?\d+\])(?:\.[^.\[\]\s]+|\[-?\d+\])*$")
_JSON_STEP = re.compile(r"\[(-?\d+)\]|([^.\[\]]+)")


def parse_json_path(path: str) -> list[str | int]:
    """``data.items[0].value`` → ``["data", "items", 0, "value"]``; ValueError when malformed."""
    if not _JSON_PATH.match(path):
        raise ValueError(f"malformed json_path {path!r}: expected keys joined by dots and [index],"
                         " like data.queue.depth or items[0].value")
    return [int(index) if index else key for index, key in _JSON_STEP.findall(path)]


def lookup(document: Any, steps: list[str | int]) -> Any:
    """Follow ``steps`` into ``document``; KeyError naming the first step that is missing."""
    value = document
    walked = ""
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                raise KeyError(f"{walked or 'the document'} has no [{step}]")
            walked += f"[{step}]"
        else:
            if not isinstance(value, dict) or step not in value:
                raise KeyError(f"{walked or 'the document'} has no key {step!r}")
            walked += f".{step}" if walked else step
        value = value[step]
    return value


def _number(value: Any) -> float | None:
    """JSON numbers, booleans and numeric strings; None for null; ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"is {json.dumps(value)[:60]}, not a number")


def escape_url_component(value: str) -> str:
    """A template value becomes exactly one URL component (``..`` included)."""
    return url_segment(value)


def redact_url(url: str) -> str:
    """Drop a password from ``https://user:pass@host/`` before the URL is shown."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class HttpSource(Source):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        base_url: str | None = Field(None, description="joined to checks' relative urls, e.g. https://mail-api.r3.example")
        headers: dict[str, str] = Field(default_factory=dict, description="sent with every request; values from ${env:NAME}, never shown")
        verify_tls: bool = Field(True, description="verify the server's TLS certificate")
        ca_file: str | None = Field(None, description="CA bundle for TLS verification")

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: Template = Field(description="absolute, or a path joined to the source's base_url; template values are percent-encoded",
                              examples=["/healthz", "https://mail-api.{{region}}.example/healthz"])
        method: Literal["GET", "HEAD", "POST", "OPTIONS"] = Field("GET", description="the HTTP method")
        measure: Literal["up", "status", "latency", "json"] = Field("up", description="what the value is")
        json_path: str | None = Field(None, description="for measure: json, e.g. data.queue.depth or items[0].value")
        expect_status: list[int] | int | None = Field(None, description="expected status code(s); default: any 200-399")
        timeout: Duration = Field(5.0, gt=0, description="for each of connect, send and receive")
        headers: dict[str, Template] = Field(default_factory=dict, description="per check; never shown in reasons")

        @field_validator("expect_status")
        @classmethod
        def _status_codes(cls, value):
            codes = [value] if isinstance(value, int) else value
            for code in codes or []:
                if not 100 <= code <= 599:
                    raise ValueError(f"{code} is not an HTTP status code (100-599)")
            return value

        @model_validator(mode="after")
        def _json_path_with_json(self):
            if self.measure == "json":
                if self.json_path is None:
                    raise ValueError("measure: json needs json_path (e.g. data.queue.depth)")
                parse_json_path(self.json_path)
            elif self.json_path is not None:
                raise ValueError(f"json_path is only used with measure: json (this check measures {self.measure})")
            return self

        def expected(self, status: int) -> bool:
            if self.expect_status is None:
                return 200 <= status < 400
            codes = [self.expect_status] if isinstance(self.expect_status, int) else self.expect_status
            return status in codes

        def expected_text(self) -> str:
            if self.expect_status is None:
                return "200-399"
            codes = [self.expect_status] if isinstance(self.expect_status, int) else self.expect_status
            return ", ".join(str(c) for c in codes)

    escape = staticmethod(escape_url_component)

    @staticmethod
    def default_fail_if(params: HttpSource.Params) -> str | None:
        """An ``up`` check with no ``fail_if`` fails when the service is not up."""
        return "< 1" if params.measure == "up" else None

    def __init__(self, settings, context):
        super().__init__(settings, context)
        verify: Any = settings.verify_tls
        if settings.verify_tls and settings.ca_file:
            verify = str(context.base_dir / settings.ca_file)
        self._client = httpx.Client(headers=settings.headers, verify=verify, follow_redirects=False)

    def _secrets(self, params: HttpSource.Params) -> list[str]:
        values = list(self.settings.headers.values()) + list(params.headers.values())
        return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)

    def _absolute(self, url: str) -> str:
        """The URL to request; ValueError when it cannot be one."""
        if "{{" in url:
            raise ValueError(f"url {url!r} has a template that was not filled in")
        if urlsplit(url).scheme:
            return url
        if not self.settings.base_url:
            raise ValueError(f"url {url!r} is relative and the http source has no base_url"
                             " (set sources.http.base_url in the plan)")
        return self.settings.base_url.rstrip("/") + "/" + url.lstrip("/")

    def measure(self, probe: Probe, at: float) -> Reading:
        if at < time.time() - PAST_TOLERANCE:
            return Reading.failed("http probes cannot look into the past")
        try:
            params = self.Params.model_validate(probe.params)
            url = self._absolute(params.url)
        except ValidationError as exc:
            return Reading.failed(f"http check {probe.check!r}: {_one_line(exc)}")
        except ValueError as exc:
            return Reading.failed(f"http check {probe.check!r}: {exc}")
        secrets = self._secrets(params)

        def redact(text: str) -> str:
            for secret in secrets:
                text = text.replace(secret, "***")
            return text

        shown = redact(redact_url(url))
        detail: dict[str, Any] = {"url": shown, "method": params.method, "measure": params.measure}
        started = time.perf_counter()
        try:
            response = self._client.request(params.method, url, headers=params.headers,
                                            timeout=httpx.Timeout(params.timeout))
        except httpx.HTTPError as exc:
            cause = redact(_transport_cause(exc, params.timeout))
            if params.measure == "up":  # down is a value here: the check must be able to fail
                return Reading.of(0, **detail, reason=cause)
            return Reading.failed(f"http {params.method} {shown}: {cause}", **detail)
        detail.update(status=response.status_code, latency=round(time.perf_counter() - started, 6))
        value, cause = _value(params, response, detail["latency"], lambda text: redact(self.context.redact(text)))
        if cause is not None:
            cause = redact(cause)
            if params.measure == "up":
                return Reading.of(value, **detail, reason=cause)
            return Reading.failed(f"http {params.method} {shown}: {cause}", **detail)
        return Reading.of(value, **detail)

    def close(self) -> None:
        self._client.close()


def _transport_cause(exc: httpx.HTTPError, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {format_duration(timeout)}"
    text = str(exc)
    if isinstance(exc, httpx.ConnectError):
        if "refused" in text.lower():
            return "connection refused"
        return f"cannot connect: {text}" if text else "cannot connect"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _value(params: HttpSource.Params, response: httpx.Response, latency: float,
           redact: Callable[[str], str]) -> tuple[float | None, str | None]:
    """(value, None), or (value for ``up`` or None, why the response is not the signal)."""
    status = response.status_code
    unexpected = None if params.expected(status) else f"HTTP {status}, expected {params.expected_text()}"
    if params.measure == "status":
        return status, None
    if params.measure == "up":
        return (0, unexpected) if unexpected else (1, None)
    if unexpected:  # an error page's latency or body is not the signal
        return None, unexpected
    if params.measure == "latency":
        return latency, None
    try:
        document = response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content-type")
        return None, f"response is not JSON ({kind}): {redact(response.text)[:80].strip()!r}"
    try:
        value = _number(lookup(document, parse_json_path(params.json_path)))
    except KeyError as exc:
        return None, f"json_path {params.json_path!r} not found: {exc.args[0]}"
    except ValueError as exc:
        return None, f"json_path {params.json_path!r} {exc}"
    return (None if value is not None and math.isnan(value) else value), None


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


@hookimpl(trylast=True)
def guardrail_register_sources(register):
    register("http", HttpSource)
