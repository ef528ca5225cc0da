"""``victoriametrics`` source: the ``prometheus`` source for VictoriaMetrics's MetricsQL.

VictoriaMetrics serves Prometheus's query API, so the ``prometheus`` source reads it as
it is, and checks its PromQL offline. MetricsQL goes further (``rate(x)`` without a
window, ``{a="1" or b="2"}``, ``WITH`` templates...), which no PromQL parser accepts:
a check written in it names this source, whose queries ``guardrail validate`` leaves to
the server (``validate --live`` through a plan asks it). Everything else, settings,
escaping and failures, is the ``prometheus`` source's.
"""

from __future__ import annotations

from guardrail import hookimpl

from .prometheus import PrometheusSource

__all__ = ["VictoriaMetricsSource"]


class VictoriaMetricsSource(PrometheusSource):
    check_query = None
    """MetricsQL: no offline parser here knows it."""
    live_name = "VictoriaMetrics"
    format_query = False
    """It answers ``/api/v1/format_query`` with a 400 (unsupported path), not a 404: an
    instant query at time 0, where no data exists, is what parses a query there."""


@hookimpl(trylast=True)
def guardrail_register_sources(register):
    register("victoriametrics", VictoriaMetricsSource)
