"""``prometheus`` source: PromQL instant and range queries (prometheus-api-client).

Template values are escaped for PromQL string literals, so a region or service name
cannot change a query's meaning. Every failure becomes an inconclusive reading that
names the source, the query and the cause.
"""

from __future__ import annotations

import math

import requests
from pydantic import BaseModel, ConfigDict, Field

from guardrail import hookimpl
from guardrail.interfaces import Probe, RangeReading, Reading, Series, Source
from guardrail.model.types import Duration, Template


def escape_promql(value: str) -> str:
    """Escape a value for a double-quoted PromQL string literal."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class PrometheusSource(Source):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str = Field(description="base URL, e.g. http://prometheus:9090")
        timeout: Duration = Field(10.0, gt=0)
        bearer_token: str | None = Field(None, description="from ${env:NAME}; sent as Authorization: Bearer")
        username: str | None = None
        password: str | None = Field(None, description="basic auth; from ${env:NAME}")
        headers: dict[str, str] = Field(default_factory=dict)
        verify_tls: bool = True
        ca_file: str | None = None

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        query: Template = Field(description="PromQL; {{region}} and friends are escaped for PromQL strings")

    escape = staticmethod(escape_promql)

    def __init__(self, settings, context):
        super().__init__(settings, context)
        from prometheus_api_client import PrometheusConnect

        headers = dict(settings.headers)
        if settings.bearer_token:
            headers["Authorization"] = f"Bearer {settings.bearer_token}"
        self._prom = PrometheusConnect(url=settings.url.rstrip("/"), headers=headers or None, disable_ssl=not settings.verify_tls)
        if settings.username is not None:
            self._prom._session.auth = (settings.username, settings.password or "")
        if settings.ca_file and settings.verify_tls:
            self._prom._session.verify = settings.ca_file

    def _fail(self, probe: Probe, exc: Exception) -> str:
        cause = getattr(exc, "__cause__", None) or exc
        text = str(exc).strip() or type(exc).__name__
        if isinstance(exc, requests.exceptions.RetryError):
            text = f"server error after retries ({text})"
        elif isinstance(cause, requests.exceptions.Timeout):
            text = f"timed out after {self.settings.timeout:g}s"
        return f"prometheus {self.settings.url}: query {probe.params['query']!r} failed: {text}"

    def measure(self, probe: Probe, at: float) -> Reading:
        query = probe.params["query"]
        try:
            result = self._prom.custom_query(query, params={"time": at, "timeout": f"{self.settings.timeout:g}s"},
                                             timeout=self.settings.timeout)
        except Exception as exc:  # the library raises several unrelated types; all are inconclusive
            return Reading.failed(self._fail(probe, exc), query=query)
        series = []
        if isinstance(result, list):
            for item in result:
                value = float(item.get("value", [0, "nan"])[1])
                if not math.isnan(value):
                    series.append(Series(dict(item.get("metric", {})), value))
        elif isinstance(result, list) is False and result:  # scalar result: [time, "value"]
            value = float(result[1])
            if not math.isnan(value):
                series.append(Series({}, value))
        return Reading(series=tuple(series), detail={"query": query})

    def measure_range(self, probe: Probe, start: float, end: float, step: float) -> RangeReading:
        query = probe.params["query"]
        try:
            result = self._prom.custom_query_range(query, start_time=_dt(start), end_time=_dt(end),
                                                   step=f"{max(step, 1):g}s", timeout=self.settings.timeout)
        except Exception as exc:
            return RangeReading(error=self._fail(probe, exc))
        by_time: dict[float, list[float]] = {}
        for item in result:
            for t, v in item.get("values", []):
                value = float(v)
                if not math.isnan(value):
                    by_time.setdefault(float(t), []).append(value)
        points = tuple((t, sum(vs) / len(vs)) for t, vs in sorted(by_time.items()))
        return RangeReading(points=points)

    def close(self) -> None:
        self._prom._session.close()


def _dt(epoch: float):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc)


@hookimpl(trylast=True)
def guardrail_register_sources(register):
    register("prometheus", PrometheusSource)
