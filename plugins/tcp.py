"""``tcp`` source: can a fleet be reached on a port, and does it greet correctly?

One check probes every target of a region concurrently (connect, then optionally read
the first line and match it against ``banner``, e.g. ``^220`` for SMTP) and yields ONE
value: the ratio of targets that succeeded. A partial-fleet failure, like 20% of the
servers timing out on port 25 in the DuoCircle incident, is therefore one finding whose
evidence lists the failing hosts and why each failed, not twenty separate findings.

A probe answers for *now* only: asked about a time in the past (a baseline window, a
backtest) it returns an inconclusive reading instead of pretending.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from guardrail import Duration, Probe, Reading, Source, format_duration, hookimpl

PAST_TOLERANCE = 60.0
"""How far before the wall clock ``at`` may be and still count as *now* (evaluation
ticks are a little late by the time they run)."""

BANNER_LIMIT = 1024
"""Bytes read while waiting for the end of the banner's first line."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_target(text: str, default_port: int | None) -> Endpoint:
    """``host:port``, ``host``, ``[::1]:25`` or ``::1`` → Endpoint; ValueError if no port."""
    text = text.strip()
    host, port = text, None
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or (close + 1 < len(text) and text[close + 1] != ":"):
            raise ValueError(f"target {text!r}: expected [ipv6]:port")
        host, rest = text[1:close], text[close + 2:]
        port = rest or None
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host:
        raise ValueError(f"target {text!r}: no host")
    if port is None:
        if default_port is None:
            raise ValueError(f"target {text!r} has no port; write host:port or set port:")
        return Endpoint(host, default_port)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"target {text!r}: port must be a number between 1 and 65535")
    return Endpoint(host, int(port))


def split_targets(targets: str | list[str]) -> list[str]:
    """A list, or one comma-separated string (what a string template variable renders to)."""
    items = targets.split(",") if isinstance(targets, str) else targets
    return [t.strip() for t in items if t and t.strip()]


def _is_template(text: str) -> bool:
    return "{{" in text


class TcpSource(Source):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        concurrency: int = Field(32, ge=1, le=1024, description="connections open at once, across all checks of this source")

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        targets: list[str] | str = Field(
            description='hosts or host:port; a list, a comma-separated string, or a template like "{{smtp_hosts}}"',
            examples=[["mx1.example:25", "mx2.example:25"], "{{smtp_hosts}}"])
        port: int | None = Field(None, ge=1, le=65535, description="port for targets that do not name one")
        banner: str | None = Field(None, description='regular expression the first line must match from its start, e.g. "^220"')
        timeout: Duration = Field(5.0, gt=0, description="per target: connect and banner together")
        min_success_ratio: float | None = Field(
            None, ge=0, le=1, description='the check fails below this share of targets (implies fail_if: "< ratio")')

        @field_validator("banner")
        @classmethod
        def _banner_compiles(cls, value: str | None) -> str | None:
            if value is not None:
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ValueError(f"not a valid regular expression: {exc}") from None
            return value

        @model_validator(mode="after")
        def _literal_targets_parse(self):
            """Targets written out (not templates) are checked now, where the author sees them."""
            for target in split_targets(self.targets):
                if not _is_template(target):
                    parse_target(target, self.port)
            return self

    @staticmethod
    def default_fail_if(params: TcpSource.Params) -> str | None:
        """``min_success_ratio: 0.95`` means ``fail_if: "< 0.95"``."""
        if params.min_success_ratio is None:
            return None
        return f"< {params.min_success_ratio:g}"

    def __init__(self, settings, context):
        super().__init__(settings, context)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="guardrail-tcp")
            return self._pool

    def measure(self, probe: Probe, at: float) -> Reading:
        if at < time.time() - PAST_TOLERANCE:
            return Reading.failed("tcp probes cannot look into the past")
        try:
            params = self.Params.model_validate(probe.params)
            names = split_targets(params.targets)
            unrendered = [t for t in names if _is_template(t)]
            if unrendered:
                raise ValueError(f"targets: template {unrendered[0]!r} was not filled in")
            endpoints = list(dict.fromkeys(parse_target(t, params.port) for t in names))
        except (ValidationError, ValueError) as exc:
            return Reading.failed(f"tcp check {probe.check!r}: {_one_line(exc)}")
        if not endpoints:
            return Reading()
        pattern = re.compile(params.banner) if params.banner is not None else None
        outcomes = self._executor().map(lambda e: probe_endpoint(e, params.timeout, pattern), endpoints)
        failing = {str(e): reason for e, reason in zip(endpoints, outcomes) if reason is not None}
        succeeded = len(endpoints) - len(failing)
        detail: dict[str, Any] = {"checked": len(endpoints), "succeeded": succeeded, "failing": failing}
        if pattern is not None:
            detail["banner"] = params.banner
        return Reading.of(succeeded / len(endpoints), **detail)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def probe_endpoint(endpoint: Endpoint, timeout: float, banner: re.Pattern[str] | None) -> str | None:
    """Connect (and read the banner); None on success, else why it failed."""
    deadline = time.monotonic() + timeout
    waited = format_duration(timeout)
    try:
        conn = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return f"timed out after {waited}"
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror or exc})"
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    with conn:
        if banner is None:
            return None
        line, error = _first_line(conn, deadline)
        if error == "timeout":
            return f"timed out after {waited} waiting for a banner" + (f" (got {line!r})" if line else "")
        if error:
            return f"{error} before sending a banner" if not line else f"{error} after {line!r}"
        if not banner.match(line):
            return f"banner {line!r} does not match {banner.pattern!r}"
    return None


def _first_line(conn: socket.socket, deadline: float) -> tuple[str, str | None]:
    """(first line without its line ending, None), or (what arrived, why no line did:
    "timeout", "closed" or the socket error). A peer that sends a partial line and
    closes, or a line longer than ``BANNER_LIMIT``, is judged on what it sent."""
    data = b""
    error = None
    while b"\n" not in data and len(data) < BANNER_LIMIT:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise socket.timeout
            conn.settimeout(remaining)
            chunk = conn.recv(BANNER_LIMIT - len(data))
        except socket.timeout:
            error = "timeout"
            break
        except OSError as exc:
            error = exc.strerror or type(exc).__name__
            break
        if not chunk:
            error = None if data else "closed"
            break
        data += chunk
    line = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
    return line, error


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            parts.append(f"{where}: {err['msg']}" if where else err["msg"])
        return "; ".join(parts)
    return str(exc)


@hookimpl(trylast=True)
def guardrail_register_sources(register):
    register("tcp", TcpSource)
