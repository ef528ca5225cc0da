"""``sim`` source: answers PromQL probes from a scenario and the fleet log.

Checks written for the ``prometheus`` source run unchanged against it: the same
``query`` key, the same escaping of ``{{region}}`` and friends for PromQL strings, and
the same answers where the evaluator supports the query (see ``promql``). A query it
cannot evaluate is an inconclusive reading naming the query, never a silent zero.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from guardrail import PluginContext, Probe, RangeReading, Reading, Series, Source, Template
from guardrail_plugins.prometheus import PrometheusSource, escape_promql
from guardrail_plugins.prometheus_syntax import check_promql

from .fleet import FleetLog, default_fleet_path
from .freshness import sample_freshness
from .promql import PromQLError, evaluate
from .scenario import Scenario, load_scenario


def open_fleet(scenario_path: str, fleet: str | None, context: PluginContext) -> tuple[Scenario, FleetLog]:
    """The scenario and fleet log a sim plugin instance works with (paths from the plan)."""
    scenario = load_scenario(Path(context.base_dir) / scenario_path)
    if fleet:  # named by the plan: shared on purpose (an outside deploy tool may write it), read whole
        return scenario, FleetLog(Path(context.base_dir) / fleet)
    # The default log in the state folder: this rollout's own fleet within it.
    path = default_fleet_path(context.state_dir, context.service)
    return scenario, FleetLog(path, run=getattr(context, "rollout_id", "") or None)


class SimSource(Source):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        scenario: str = Field(description="scenario file, relative to the plan")
        fleet: str | None = Field(None, description="fleet log shared with the sim deployer; default: in the state dir")
        seed: int | None = Field(None, description="overrides the scenario's seed")

    class Params(PrometheusSource.Params):
        """The ``prometheus`` source's params, validated by the same rules (templates only
        inside double-quoted strings, never after a backslash), so a policy is refused
        against ``sim`` exactly where it would be against ``prometheus``."""

        query: Template = Field(description='PromQL; {{region}} and friends go inside double quotes: region="{{region}}"')

    escape = staticmethod(escape_promql)
    check_query = staticmethod(check_promql)
    """PromQL's whole grammar, as for ``prometheus``: a query the evaluator does not
    support is valid PromQL, refused when measured (an inconclusive reading)."""
    blocking_io = False  # answers in-process from memory: threads would only add overhead

    def __init__(self, settings, context: PluginContext):
        super().__init__(settings, context)
        from .generator import ScenarioStore  # numpy loads only when a sim is used

        scenario, self.fleet = open_fleet(settings.scenario, settings.fleet, context)
        start = scenario.start_epoch
        if start is None:
            start = self.fleet.ensure_start(context.clock.now())
        self.store = ScenarioStore(scenario, start=start, fleet=self.fleet, seed=settings.seed)
        self._lock = threading.Lock()  # parallel waves may measure at once; the store's caches are not shared-safe

    def _series(self, query: str, at: float) -> tuple[Series, ...]:
        with self._lock:
            result = evaluate(query, self.store, at)
        if isinstance(result, float):
            return () if result != result else (Series({}, result),)
        return tuple(Series(dict(labels), value) for labels, value in result if value == value)

    def measure(self, probe: Probe, at: float) -> Reading:
        """A reading with the freshness of its samples, by the ``prometheus`` source's rules."""
        query = probe.params["query"]
        try:
            series = self._series(query, at)
        except PromQLError as exc:
            return Reading.failed(f"sim: query {query!r} failed: {exc}", query=query)
        reading = Reading(series=series, detail={"query": query})
        if not series:
            return reading
        with self._lock:
            fresh = sample_freshness(query, self.store, at, self.store.scenario.step)
        return reading.with_freshness(fresh)

    def measure_range(self, probe: Probe, start: float, end: float, step: float) -> RangeReading:
        """Like the base class, without building a Reading per step."""
        query = probe.params["query"]
        count = int((end - start) / step + 1e-9) + 1 if step > 0 else 1
        try:
            samples = [(start + i * step, [s.value for s in self._series(query, start + i * step)])
                       for i in range(count)]
        except PromQLError as exc:
            return RangeReading(error=f"sim: query {query!r} failed: {exc}")
        return RangeReading.of(samples)
