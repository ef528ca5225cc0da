"""``prometheus`` source: PromQL instant and range queries (prometheus-api-client).

Safety. A query may use templates only inside a double-quoted string
(``region="{{region}}"``; checked when the policy is validated), and each value is
escaped for where it lands there (``escape_promql``): a plain string, or the operand of
a regex matcher, where it is quoted as a regex too (``prometheus_templates``). So a
region or service name cannot change a query's meaning: an escape that is right for
``"..."`` is wrong for ``'...'`` or a backtick string, and no escape makes a bare value safe.

Failures. The library returns only ``data.result``, so the result type is guessed
from its shape, and values arrive as strings. It raises unrelated exception types;
each becomes an inconclusive ``Reading.failed`` naming the source URL (credentials
removed), the query and the cause, never a token or password (``prometheus_failures``).

Retries. The library's default (3 retries, 0/2/4 s backoff, each attempt with the full
timeout) can wait four times the timeout. Here urllib3 does not retry; ``_call`` does,
for connection failures and 502/503/504 only, each attempt waiting at most the time
left of one ``timeout`` budget, so a reading never takes longer than ``timeout``. The
budget is also sent as Prometheus's own ``timeout`` parameter, so the server stops
evaluating when we stop waiting.

Freshness. A value alone cannot say it rests on old samples (Prometheus serves a series'
last sample for 5 minutes, and ``increase(x[15m])`` over a gap uses the samples left).
A companion query asks for the inputs' newest sample times and window sample counts
(``prometheus_freshness``), joined to the check's own query with ``or`` so a reading
stays one request (a scalar query, which ``or`` cannot join, costs a second one); the
reading carries them and the judgement decides (``max_age``, ``min_window_coverage``).
Prometheus evaluates both parts: the cost is in benchmarks/RESULTS.md. ``scrape_interval`` (the basis of the
default ``max_age`` and of window coverage) is learnt once from
``/api/v1/status/config`` (``global.scrape_interval``) unless given, else 1m.

Concurrency. The evaluator calls one instance from several threads. The
``requests.Session`` is configured once and never mutated afterwards; urllib3's
connection pool is thread-safe, and its size (``connections``) should be at least the
evaluator's concurrency: with fewer, every extra concurrent request opens and then
discards a TCP connection.
"""

from __future__ import annotations

import math
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from guardrail import Duration, Probe, RangeReading, Reading, Series, Source, Template, hookimpl

from .prometheus_failures import (
    RETRY_STATUS,
    Failed,
    Status,
    Unexpected,
    api_error,
    describe,
    rejected,
    retryable,
    timed_out,
    without_credentials,
)
from .prometheus_freshness import TAG, companion_query, freshness, inputs
from .prometheus_syntax import check_promql
from .prometheus_templates import escape_promql, templates_after_backslash, templates_outside_double_quotes

__all__ = ["PrometheusSource", "escape_promql", "templates_outside_double_quotes"]

MAX_POINTS = 10_000
"""Points per series per range request; Prometheus refuses more than 11,000."""
BACKOFF = 0.1
"""Seconds before the first retry; doubled for each further one."""


class PrometheusSource(Source):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str = Field(description="base URL, e.g. http://prometheus:9090")
        timeout: Duration = Field(10.0, gt=0, description="the most one reading may take, retries included")
        bearer_token: str | None = Field(None, description="from ${env:NAME}; sent as Authorization: Bearer")
        username: str | None = Field(None, description="basic auth, with password")
        password: str | None = Field(None, description="basic auth; from ${env:NAME}")
        headers: dict[str, str] = Field(default_factory=dict, description="sent with every request; values never shown")
        verify_tls: bool = Field(True, description="verify the server's TLS certificate")
        ca_file: str | None = Field(None, description="CA bundle for TLS verification, relative to the plan")
        retries: int = Field(2, ge=0, le=5, description="retries after a refused connection or a 502/503/504")
        connections: int = Field(32, ge=1, le=1024, description="HTTP connections kept open; at least guardrail's concurrency")
        scrape_interval: Duration | None = Field(None, gt=0, description="seconds between samples of the inputs;"
                                                 " default: Prometheus's global scrape_interval, else 1m")
        freshness: bool = Field(True, description="check the age of the samples behind each reading (one more"
                                " request per reading); off: every reading counts as fresh")

        @field_validator("url")
        @classmethod
        def _http_url(cls, url: str) -> str:
            if not url or "${" in url:
                return url  # an unset or malformed ${env:NAME}: the loader already says so
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"expected an http:// or https:// URL, got {without_credentials(url)!r}")
            return url

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        query: Template = Field(description='PromQL; {{region}} and friends go inside double quotes: region="{{region}}"',
                                examples=['sum(rate(http_requests_total{region="{{region}}", code=~"5.."}[5m]))',
                                          'histogram_quantile(0.99, sum by (le) (rate(request_seconds_bucket'
                                          '{region="{{region}}"}[5m])))'])

        @field_validator("query")
        @classmethod
        def _templates_inside_strings(cls, query: str) -> str:
            outside = templates_outside_double_quotes(query)
            if outside:
                raise ValueError(f"{outside[0]} must sit inside a double-quoted string, as in region=\"{{{{region}}}}\":"
                                 " values are escaped for one, and nowhere else can they be made safe")
            after = templates_after_backslash(query)
            if after:
                raise ValueError(f"{after[0]} follows a backslash, which would escape the value's first character:"
                                 " remove the backslash")
            return query

    escape = staticmethod(escape_promql)
    check_query = staticmethod(check_promql)
    """PromQL's grammar, offline (``prometheus_syntax``): ``guardrail validate``."""
    blocking_io = True
    live_name = "Prometheus"
    """Who rejects a query in ``guardrail validate --live`` messages (``parse_error``)."""
    format_query = True
    """Whether the server has ``/api/v1/format_query`` (``parse_error``)."""

    def __init__(self, settings, context):
        super().__init__(settings, context)
        import requests
        from prometheus_api_client import PrometheusConnect
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.url = settings.url.rstrip("/")
        self.display_url = without_credentials(self.url)
        headers = dict(settings.headers)
        if settings.bearer_token:
            headers["Authorization"] = f"Bearer {settings.bearer_token}"
        self._secrets = [s for s in (settings.bearer_token, settings.password, *settings.headers.values()) if s]
        session = requests.Session()
        # requests reads the environment (proxies, CA bundle) again on every request,
        # walking os.environ twice: a third of the client's CPU per query. Read it once.
        session.proxies = requests.utils.get_environ_proxies(self.url)
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        session.trust_env = False
        session.verify = bool(settings.verify_tls) and (bundle or True)
        if settings.ca_file and settings.verify_tls:
            session.verify = str(Path(context.base_dir) / settings.ca_file)
        no_retry = Retry(total=0, read=False, raise_on_status=False)  # _call retries, within the budget
        auth = (settings.username, settings.password or "") if settings.username is not None else None
        self._prom = PrometheusConnect(url=self.url, headers=headers or None, retry=no_retry, auth=auth, session=session)
        # The library mounts an adapter with urllib3's default pool of 10; replace it.
        session.mount(self.url, HTTPAdapter(max_retries=no_retry, pool_connections=1,
                                            pool_maxsize=settings.connections))
        self._session, self._headers, self._auth = session, headers, auth
        self._interval: float | None = settings.scrape_interval
        self._interval_lock = threading.Lock()
        self._separate: set[str] = set()
        """Queries that cannot be joined with their companion query (``measure``)."""

    # -- readings ----------------------------------------------------------------------

    def measure(self, probe: Probe, at: float) -> Reading:
        query = probe.params["query"]
        selectors = inputs(query) if self.settings.freshness else None
        companion = companion_query(selectors) if selectors else None
        if companion is not None and query not in self._separate:
            # One request: the query and its companion side by side, told apart by the
            # companion's label. A query `or` cannot join (a scalar) is asked alone,
            # then its companion, from then on.
            merged = f"({query}) or ({companion})"
            try:
                result = self._call(query, lambda left: self._prom.custom_query(
                    merged, params={"time": _num(at), "timeout": _num(left)}, timeout=left))
                mine, theirs = _split(result)
                return Reading(series=_instant_series(mine), detail={"query": query}).with_freshness(
                    freshness(selectors, _answer(theirs), self.scrape_interval()))
            except Failed as failed:
                if not rejected(failed.__cause__):  # down, slow, refused: the query alone would be too
                    return Reading.failed(failed.reason, query=query)
                self._separate.add(query)
            except Unexpected:
                self._separate.add(query)
        try:
            result = self._call(query, lambda left: self._prom.custom_query(
                query, params={"time": _num(at), "timeout": _num(left)}, timeout=left))
            series = _instant_series(result)
        except Failed as failed:
            return Reading.failed(failed.reason, query=query)
        except Unexpected as odd:
            return Reading.failed(self._reason(query, str(odd)), query=query)
        reading = Reading(series=series, detail={"query": query})
        if not series or companion is None:
            return reading
        try:
            result = self._call(companion, lambda left: self._prom.custom_query(
                companion, params={"time": _num(at), "timeout": _num(left)}, timeout=left))
        except Failed as failed:
            return Reading.failed(failed.reason, query=query)
        return reading.with_freshness(freshness(selectors, _answer(_split(result)[1]), self.scrape_interval()))

    def scrape_interval(self) -> float:
        """Seconds between two samples: as set, else learnt once from Prometheus's global
        ``scrape_interval``, else 1m (its default)."""
        with self._interval_lock:
            if self._interval is None:
                self._interval = self._learn_interval() or 60.0
            return self._interval

    def _learn_interval(self) -> float | None:
        import yaml

        from guardrail.text import parse_duration

        try:
            response = self._session.get(f"{self.url}/api/v1/status/config", headers=self._headers, auth=self._auth,
                                         timeout=self.settings.timeout)
            text = response.json()["data"]["yaml"] if response.status_code == 200 else ""
            value = (yaml.safe_load(text) or {}).get("global", {}).get("scrape_interval")
            return parse_duration(str(value)) if value else None
        except Exception:  # not Prometheus (another implementation of its API), or no access
            return None

    def measure_range(self, probe: Probe, start: float, end: float, step: float) -> RangeReading:
        """Points at ``start + k * step`` up to ``end``, as the base class defines them
        (every series' values at each step, and their mean). One range request per 10,000 points,
        with the exact (fractional) start and end: the library's own arguments round
        them to whole seconds, so they are overridden through ``params``."""
        query = probe.params["query"]
        if step <= 0 or end < start:
            return RangeReading(error=self._reason(query, f"invalid range [{start}, {end}] step {step}"))
        count = int((end - start) / step + 1e-9) + 1
        by_time: dict[float, list[float]] = {}
        for first in range(0, count, MAX_POINTS):
            lo, hi = start + first * step, start + (min(first + MAX_POINTS, count) - 1) * step
            try:
                result = self._call(query, lambda left: self._prom.custom_query_range(
                    query, start_time=_dt(lo), end_time=_dt(hi), step=_num(step), timeout=left,
                    params={"start": _num(lo), "end": _num(hi), "timeout": _num(left)}))
            except Failed as failed:
                return RangeReading(error=failed.reason)
            for item in result if isinstance(result, list) else ():
                for t, v in item.get("values", ()) if isinstance(item, dict) else ():
                    value = _float(v)
                    if value is not None and not math.isnan(value):
                        by_time.setdefault(float(t), []).append(value)
        return RangeReading.of(sorted(by_time.items()))

    def parse_error(self, query: str) -> str | None:
        """Prometheus's objection to ``query`` (parse and type errors), or None when it
        accepts it. Asks ``/api/v1/format_query``, which parses without evaluating
        (Prometheus 2.38+), else an instant query at time 0, where no data exists.
        Raises ``RuntimeError`` with the cause when Prometheus cannot be asked."""
        def ask(path: str, params: dict[str, str]) -> Callable[[float], Any]:
            return lambda left: self._session.get(f"{self.url}{path}", params=params, headers=self._headers,
                                                  auth=self._auth, timeout=left)

        response = self._call(query, ask("/api/v1/format_query", {"query": query}), raw=True) \
            if self.format_query else None
        if response is None or response.status_code == 404:
            response = self._call(query, ask("/api/v1/query", {"query": query, "time": "0"}), raw=True)
        if response.status_code == 200:
            return None
        error = api_error(response.status_code, response.content, self.context.redact)
        if response.status_code in (400, 422):
            return error.split(": ", 1)[1] if error.startswith("invalid parameter \"query\": ") else error
        raise Failed(self._reason(query, f"HTTP {response.status_code}: {error}"))

    def close(self) -> None:
        self._session.close()

    # -- failures ----------------------------------------------------------------------

    def _call(self, query: str, send: Callable[[float], Any], *, raw: bool = False) -> Any:
        """``send(time_left)``, retried within one ``timeout`` budget; raises ``Failed``."""
        deadline = time.monotonic() + self.settings.timeout
        attempt = 0
        while True:
            cause: Exception
            try:
                answer = send(max(deadline - time.monotonic(), 0.001))
                if not raw or answer.status_code not in RETRY_STATUS:
                    return answer
                cause = Status(answer)
            except Exception as exc:
                if timed_out(exc):  # the budget is spent: no retry
                    raise Failed(self._reason(query, describe(exc, self.settings.timeout, self.context.redact))) from exc
                cause = exc
            pause = BACKOFF * 2 ** attempt
            if (attempt >= self.settings.retries or not retryable(cause)
                    or deadline - time.monotonic() < pause + 0.05):
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise Failed(self._reason(query, describe(cause, self.settings.timeout, self.context.redact) + tries)) from cause
            time.sleep(pause)
            attempt += 1

    def _reason(self, query: str, cause: str) -> str:
        text = f"prometheus {self.display_url}: query {query!r} failed: {cause}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _split(result: Any) -> tuple[Any, list[dict]]:
    """(the query's own result, the companion's series) of a joined answer."""
    if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
        return result, []
    tagged = [item for item in result if TAG in (item.get("metric") or {})]
    return [item for item in result if TAG not in (item.get("metric") or {})], tagged


def _answer(tagged: list[dict]) -> dict[str, float]:
    """The companion's values by tag (``prometheus_freshness.freshness``)."""
    answer = {}
    for item in tagged:
        value = _float((item.get("value") or (0, ""))[1])
        if value is not None:
            answer[item["metric"][TAG]] = value
    return answer


def _instant_series(result: Any) -> tuple[Series, ...]:
    """``data.result`` of an instant query, whatever its type, as series (NaN dropped)."""
    if isinstance(result, list) and len(result) == 2 and isinstance(result[0], (int, float)):
        value = _float(result[1])  # a scalar [t, "v"] or a string [t, "text"]
        if value is None:
            raise Unexpected(f"the query returns the string {result[1]!r}, not a number")
        return () if math.isnan(value) else (Series({}, value),)
    series = []
    for item in result if isinstance(result, list) else ():
        if not isinstance(item, dict):
            continue
        if "values" in item:
            raise Unexpected("the query returns a range vector; wrap it in a function such as "
                             "rate() or max_over_time()")
        value = _float((item.get("value") or (0, "NaN"))[1])
        if value is not None and not math.isnan(value):
            series.append(Series(dict(item.get("metric") or {}), value))
    return tuple(series)


def _float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _num(seconds: float) -> str:
    """Seconds as Prometheus reads them: a plain decimal, millisecond precision."""
    return f"{seconds:.3f}"


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


@hookimpl(trylast=True)
def guardrail_register_sources(register):
    register("prometheus", PrometheusSource)
