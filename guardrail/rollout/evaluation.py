"""Turning a plan's checks into probes and readings.

The ``Evaluator`` owns the source instances (one per source and region, since a
region may override a source's settings), fills each check's templates with the
region's variables escaped by the source for where they land (a PromQL string or
regex matcher, an argv element, a URL), and measures a whole tick concurrently, so a
tick costs about the slowest query rather than the sum of all of them.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable, NamedTuple

from guardrail.plugin.interfaces import PluginContext, Probe, RangeReading, Reading
from guardrail.language.loader import Plan
from guardrail.language.model import Check, Policy
from guardrail.language.types import render_value
from guardrail.plugin.manager import Registry
from guardrail.secrets import Redactor


class Item(NamedTuple):
    """One check of one policy in one region: the unit the judge keeps state for. A tuple,
    so the dict lookups made for every item at every tick hash it without a Python call."""

    policy: str
    check: str
    region: str

    def __str__(self) -> str:
        return f"{self.region}/{self.policy}/{self.check}"


class Evaluator:
    def __init__(self, plan: Plan, registry: Registry, context: PluginContext, *, concurrency: int = 16):
        self.plan = plan
        self.registry = registry
        self.context = context
        self.redactor = Redactor(plan.secrets)
        self.policies: dict[str, Policy] = {p.policy.name: p.policy for p in plan.policies}
        self.checks: dict[tuple[str, str], Check] = {
            (p.name, c.name): c for p in self.policies.values() for c in p.checks
        }
        self._sources: dict[tuple[str, str], Any] = {}
        self._probes: dict[Item, tuple[Any, Probe]] = {}
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="guardrail-probe")

    def items(self, regions: Iterable[str], only: Iterable[tuple[str, str]] | None = None) -> list[Item]:
        wanted = set(only) if only is not None else None
        return [Item(p, c, r) for r in regions for (p, c) in self.checks if wanted is None or (p, c) in wanted]

    def source(self, name: str, region: str) -> Any:
        key = (name, region)
        if key not in self._sources:
            plugin, settings = self.plan.source_config(name, region)
            self._sources[key] = self.registry.build("sources", plugin, settings, self.context)
        return self._sources[key]

    def probe(self, item: Item) -> tuple[Any, Probe]:
        """The source and the rendered probe of an item (rendered once, then reused)."""
        if item in self._probes:
            return self._probes[item]
        check = self.checks[(item.policy, item.check)]
        source = self.source(check.source, item.region)
        escape = getattr(source, "escape", None) or (lambda v: v)  # Source.escape: declared there
        variables = self.plan.rollout.region_vars(item.region)
        params = render_value(check.params, variables, escape)
        self._probes[item] = source, Probe(check=item.check, region=item.region, params=params)
        return self._probes[item]

    def _read(self, source: Any, probe: Probe, at: float) -> Reading:
        try:
            return source.measure(probe, at)
        except Exception as exc:  # a broken plugin is inconclusive evidence, never a crash mid-bake
            return self._broken(exc)

    def _broken(self, exc: Exception) -> Reading:
        return Reading.failed(self.redactor.redact(f"source error: {type(exc).__name__}: {exc}"))

    def measure(self, items: list[Item], at: float) -> dict[Item, Reading]:
        """Readings for every item at time ``at``. Sources that do blocking I/O run
        concurrently on a bounded pool; in-process ones (``blocking_io = False``) inline."""
        out: dict[Item, Reading] = {}
        futures = {}
        for item in items:
            try:
                source, probe = self.probe(item)
            except Exception as exc:  # the source could not be built or the probe rendered
                out[item] = self._broken(exc)
                continue
            if getattr(source, "blocking_io", True):  # Source.blocking_io: declared there
                futures[item] = self._pool.submit(self._read, source, probe, at)
            else:
                out[item] = self._read(source, probe, at)
        for item, future in futures.items():
            out[item] = future.result()
        return out

    def measure_range(self, item: Item, start: float, end: float, step: float) -> RangeReading:
        try:
            source, probe = self.probe(item)
            return source.measure_range(probe, start, end, step)
        except Exception as exc:
            return RangeReading(error=self.redactor.redact(f"source error: {type(exc).__name__}: {exc}"))

    def submit_range(self, item: Item, start: float, end: float, step: float) -> Future[RangeReading]:
        """``measure_range`` on the bounded pool, so control windows are measured
        alongside a tick's instant readings (``guardrail.rollout.control``)."""
        return self._pool.submit(self.measure_range, item, start, end, step)

    def query_text(self, item: Item) -> str:
        """The rendered query (or params) of an item, for evidence."""
        try:
            _, probe = self.probe(item)
        except Exception as exc:
            return f"<cannot render: {exc}>"
        params = probe.params
        return str(params.get("query") or params.get("url") or params.get("targets") or params)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for source in self._sources.values():
            try:
                source.close()
            except Exception:
                pass
