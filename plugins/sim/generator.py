"""Samples of a scenario: a pure function of (scenario, seed, fleet timeline, time).

Every series is sampled on one grid, ``k * step`` milliseconds since the epoch, from the
start of history on. Noise and jitter come from a counter-based hash of (seed, series,
grid index), not from a stateful random generator, so the sample at time *t* is the same
however it is asked for (a PromQL query, ``/metrics``, an OpenMetrics export) and
however far the arrays happen to extend. Counters integrate their per-second increase
from the first sample of history, so they are cumulative and monotonic except where a
``reset`` effect restarts them.

A fleet change at time *T* shows strictly after *T*: the sample at *T* is the one a
scrape at *T* took before the change, so it keeps the version that ran until then (its
level, its events, its rate over the step that ends at *T*), and it is the same whether
it was asked for before or after the change was logged. From the next sample on the new
version's effects apply, their ``after`` counted from *T* itself.

Why arrays: the engine's benchmark asks ~100k queries per run. Each series is computed
once per fleet change with numpy (a few thousand points) and then answered by bisect on
plain lists. A change in one region's timeline only recomputes that region's series; the
arrays extend (doubling) when a query asks beyond them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .fleet import FleetLog
from .promql import PromQLError, SeriesData
from .scenario import Effect, Metric, Scenario, check_scenario, load_scenario

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_INF = float("inf")
MAX_SAMPLES = 200_000
"""Per series (35 days at 15s). Samples live in Python lists for fast bisect, so a
scenario started years before a real clock's now is refused rather than swapping."""


@dataclass(frozen=True)
class SeriesSpec:
    """One generated series: a metric in a region (and instance)."""

    metric: str
    region: str
    instance: int | None
    labels: dict[str, str]
    """Including ``__name__``."""
    definition: Metric


class ScenarioStore:
    """Answers the PromQL evaluator's ``prepare``/``select`` from a scenario and a fleet.

    :param start: the scenario start (epoch seconds); history begins ``history`` before.
    :param fleet: the fleet log to follow; None means every region stays on the baseline.
    :param seed: overrides the scenario's ``seed``.
    """

    def __init__(self, scenario: Scenario, *, start: float, fleet: FleetLog | None = None, seed: int | None = None):
        self.scenario = check_scenario(scenario)
        self.seed = scenario.seed if seed is None else int(seed)
        self.fleet = fleet
        self.step_ms = int(round(scenario.step * 1000))
        self.start_ms = int(round(start * 1000))
        self.k0 = -(-(self.start_ms - int(round(scenario.history * 1000))) // self.step_ms)
        self.history_start_ms = self.k0 * self.step_ms
        self.specs = [spec for name, metric in scenario.metrics.items() for spec in _specs(name, metric, scenario.regions)]
        self._by_name: dict[str, list[int]] = {}
        for i, spec in enumerate(self.specs):
            self._by_name.setdefault(spec.metric, []).append(i)
        self._selected: dict[Any, list[int]] = {}
        self._data: dict[int, SeriesData] = {}
        self._end_k = self.k0 - 1
        self._generation = -1
        self._timelines: dict[str, list[tuple[int, int, str]]] = {}
        self._sync_fleet()

    # --- the evaluator's interface --------------------------------------------------

    def prepare(self, t_ms: int) -> None:
        """Called once per query: follow the fleet log, extend the arrays to ``t_ms``."""
        if self.fleet is not None and (self.fleet.refresh() or self.fleet.generation != self._generation):
            self._sync_fleet()
        need = t_ms // self.step_ms
        if need > self._end_k:
            if need - self.k0 >= MAX_SAMPLES:
                days = (t_ms - self.history_start_ms) / 86_400_000
                raise PromQLError(f"the simulated history would span {days:.0f} days up to this time, more than "
                                  f"{MAX_SAMPLES} samples per series: give the scenario a later start (or none), "
                                  "or run on a virtual clock")
            grow = max(need - self.k0, 3600_000 // self.step_ms, 16)
            self._end_k = min(need + grow, self.k0 + MAX_SAMPLES - 1)
            self._data.clear()

    def select(self, selector: Any) -> list[SeriesData]:
        """The series a vector selector matches (matching cached per selector)."""
        found = self._selected.get(selector.key)
        if found is None:
            candidates = self._by_name.get(selector.name, []) if selector.name else range(len(self.specs))
            found = [i for i in candidates if selector.matches(self.specs[i].labels)]
            self._selected[selector.key] = found
        data = self._data
        return [data.get(i) or self._compute(i) for i in found]

    # --- for exposition and tests ---------------------------------------------------

    def series(self, index: int, until: float) -> SeriesData:
        """Every sample of series ``index`` from the start of history up to ``until``."""
        self.prepare(int(round(until * 1000)))
        return self._data.get(index) or self._compute(index)

    def versions(self) -> dict[str, str]:
        """What each region runs now, per the fleet log."""
        self.prepare(self.history_start_ms)
        return {region: segments[-1][2] for region, segments in self._timelines.items()}

    # --- generation -----------------------------------------------------------------

    def _sync_fleet(self) -> None:
        baseline = self.scenario.baseline_version
        for region in self.scenario.regions:
            changes = self.fleet.timeline(region) if self.fleet is not None else []
            segments = _segments(self.history_start_ms, baseline, changes)
            if self._timelines.get(region) != segments:
                self._timelines[region] = segments
                for i in [i for i in self._data if self.specs[i].region == region]:
                    del self._data[i]
        self._generation = self.fleet.generation if self.fleet is not None else 0

    def _compute(self, index: int) -> SeriesData:
        spec = self.specs[index]
        metric = spec.definition
        k = np.arange(self.k0, self._end_k + 1, dtype=np.int64)
        t_ms = k * self.step_ms
        level = np.full(len(k), float(metric.value))
        if metric.diurnal is not None:
            d = metric.diurnal
            level *= 1.0 + d.amplitude * np.cos(2 * math.pi * (t_ms / 1000.0 - d.peak) / d.period)
        if metric.noise:
            level += metric.noise * _gaussian(self._key("noise", spec.metric, spec.region, spec.instance), k)
        state = _State(level, np.ones(len(k), bool), np.zeros(len(k)), np.zeros(len(k), bool))
        for n, (since, until, version) in enumerate(self._timelines[spec.region]):
            # A segment holds the samples in (since, until]; the first also holds the start of history.
            lo = -_INF if n == 0 else since
            for effect in self.scenario.effects_of(version):
                if _applies(effect, spec):
                    self._apply(effect, spec, state, t_ms, origin=since, lo=lo, hi=until)
        for effect in self.scenario.incidents:
            if _applies(effect, spec):
                self._apply(effect, spec, state, t_ms, origin=self.start_ms, lo=-_INF, hi=_INF)
        if metric.type == "counter":
            increase = np.maximum(state.level, 0.0) * (self.step_ms / 1000.0) + state.events
            increase[0] = 0.0
            total = np.cumsum(increase)
            restart_base = np.maximum.accumulate(np.where(state.resets, total - increase, 0.0))
            values = total - restart_base
        else:
            values = state.level
            if metric.min is not None or metric.max is not None:
                values = np.clip(values, metric.min, metric.max)
        ts, vals = t_ms[state.present], values[state.present]
        drops = np.where(vals[1:] < vals[:-1], vals[:-1], 0.0)
        corr = np.concatenate(([0.0], np.cumsum(drops))) if len(vals) else np.zeros(0)
        data = SeriesData(spec.labels, ts.tolist(), vals.tolist(), corr.tolist())
        self._data[index] = data
        return data

    def _apply(self, effect: Effect, spec: SeriesSpec, state: _State, t_ms: np.ndarray, *,
               origin: float, lo: float, hi: float) -> None:
        """Apply ``effect`` to the samples in (``lo``, ``hi``], its time counted from ``origin``."""
        since = (t_ms - origin) / 1000.0
        begin = effect.after - effect.before
        end = begin + effect.for_ if effect.for_ is not None else _INF
        active = (t_ms > lo) & (t_ms <= hi) & (since >= begin) & (since < end)
        if not active.any():
            return
        phase = since - begin
        discrete = effect.reset or (spec.definition.type == "counter" and effect.add is not None
                                    and effect.every is not None and effect.lasting is None)
        if discrete:
            # Count the events fired by each sample, none up to ``lo`` (an event at the change
            # itself shows at the next sample). The effect's end stops further events (one at
            # the end does not happen); so does the next change, whose sample at ``hi`` still
            # counts an event at ``hi``. ``fired`` never decreases, so the cap is a minimum.
            fired = np.where(t_ms > lo, self._fired(effect, spec, phase), 0.0)
            stop = origin + end * 1000.0
            if stop < _INF and stop <= hi:
                cap = self._fired(effect, spec, np.array([(stop - origin) / 1000.0 - begin]), strict=True)[0]
            elif hi < _INF:
                cap = self._fired(effect, spec, np.array([(hi - origin) / 1000.0 - begin]))[0]
            else:
                cap = _INF
            fired = np.minimum(fired, cap)
            new = np.diff(fired, prepend=fired[0]) > 0
            if effect.reset:
                state.resets |= new
            else:
                state.events += np.diff(fired, prepend=fired[0]) * effect.add
            return
        if effect.every is not None:
            index = np.floor(phase / effect.every)
            into = phase - index * effect.every - self._jitter(effect, spec, index)
            active &= (into >= 0) & (into < (effect.lasting or self.scenario.step))
        strength = np.clip(phase / effect.ramp, 0.0, 1.0)[active] if effect.ramp else 1.0
        level = state.level
        if effect.add is not None:
            level[active] += strength * effect.add
        elif effect.set is not None:
            level[active] += strength * (effect.set - level[active])
        elif effect.scale is not None:
            level[active] *= 1.0 + strength * (effect.scale - 1.0)
        elif effect.bump is not None:
            level[active] += effect.bump * (1.0 - np.cos(2.0 * math.pi * phase[active] / effect.for_)) / 2.0
        elif effect.gap:
            state.present &= ~active

    def _fired(self, effect: Effect, spec: SeriesSpec, phase: np.ndarray, strict: bool = False) -> np.ndarray:
        """How many events happened by each ``phase`` (seconds since the effect's start)."""
        if effect.every is None:
            return ((phase > 0) if strict else (phase >= 0)).astype(float)
        index = np.floor(np.maximum(phase, 0.0) / effect.every)
        into = phase - index * effect.every - self._jitter(effect, spec, index)
        current = (into > 0) if strict else (into >= 0)
        return np.where(phase >= 0, index + current, 0.0)

    def _jitter(self, effect: Effect, spec: SeriesSpec, index: np.ndarray) -> np.ndarray | float:
        if not effect.jitter:
            return 0.0
        # Not keyed by metric or instance: the same event moves every series of the region.
        key = self._key("jitter", spec.region, effect.after, effect.every, effect.jitter)
        return effect.jitter * _uniform(key, index.astype(np.int64))

    def _key(self, *parts: Any) -> int:
        digest = hashlib.blake2b(repr((self.seed,) + parts).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")


def open_store(scenario: Scenario | str | Path, *, fleet: FleetLog | str | Path | None = None, start: float | None = None,
               seed: int | None = None, now: float | None = None) -> ScenarioStore:
    """A store for a scenario (model or file) and an optional fleet log (object or path).

    The start is the scenario's ``start``, else ``start``, else the one pinned in the
    fleet log, else ``now`` (pinned in the fleet log for every other reader).
    """
    model = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    log = FleetLog(fleet) if isinstance(fleet, (str, Path)) else fleet
    begin = model.start_epoch if model.start_epoch is not None else start
    if begin is None and log is not None:
        begin = log.start()
        if begin is None and now is not None:
            begin = log.ensure_start(now)
    if begin is None:
        begin = now
    if begin is None:
        raise ValueError("the scenario has no start: pass start= or now=")
    return ScenarioStore(model, start=begin, fleet=log, seed=seed)


@dataclass
class _State:
    level: np.ndarray
    present: np.ndarray
    events: np.ndarray
    resets: np.ndarray


def _specs(name: str, metric: Metric, regions: list[str]) -> list[SeriesSpec]:
    out = []
    for region in regions:
        numbers = range(1, metric.instances + 1) if metric.instances else [None]
        for n in numbers:
            labels = {"__name__": name, **metric.labels, "region": region}
            if n is not None:
                labels["instance"] = f"{region}-{n}"
            out.append(SeriesSpec(name, region, n, labels, metric))
    return out


def _segments(history_start_ms: int, baseline: str, changes: list[tuple[float, str]]) -> list[tuple[int, int, str]]:
    """``[(since_ms, until_ms, version)]``: the baseline from the start of history, then
    each change; a change to the version already running continues its segment. A
    segment's samples are those in (since, until], the first one's from the start of
    history on; a change before history began sets what runs from its start."""
    points: list[tuple[int, str]] = [(history_start_ms, baseline)]
    for at, version in changes:
        at_ms = int(round(at * 1000))
        if at_ms < history_start_ms:  # changes are sorted: only the baseline point precedes
            points[0] = (history_start_ms, version)
            continue
        if version == points[-1][1]:
            continue
        if len(points) > 1 and at_ms == points[-1][0]:  # changes at one instant: the last one counts
            points.pop()
            if version == points[-1][1]:
                continue
        points.append((at_ms, version))
    ends = [p[0] for p in points[1:]] + [_INF]
    return [(since, until, version) for (since, version), until in zip(points, ends)]


def _applies(effect: Effect, spec: SeriesSpec) -> bool:
    return ((effect.metric == spec.metric or effect.metric == "*")
            and (effect.regions is None or spec.region in effect.regions)
            and (effect.instances is None or spec.instance in effect.instances))


def _uniform(key: int, index: np.ndarray) -> np.ndarray:
    """Uniform (0, 1) per index: splitmix64 of key + index·golden, as a counter-based RNG."""
    x = index.astype(np.uint64) * _GOLDEN + np.uint64(key)
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    x = x ^ (x >> np.uint64(31))
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _gaussian(key: int, index: np.ndarray) -> np.ndarray:
    u1, u2 = _uniform(key, index), _uniform(key ^ 0x5DEECE66D, index)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)
