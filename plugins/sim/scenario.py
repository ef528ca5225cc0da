"""``kind: Scenario``: how each metric of a simulated fleet behaves, per region, per version.

A scenario is the script of a simulated incident. It is short on purpose: a healthy
baseline for every metric, then *effects* that bend it, either while a version runs in a
region (time counted from when that region got the version) or at fixed offsets from the
scenario start (an incident that no deploy caused)::

    apiVersion: guardrail/v1
    kind: Scenario
    name: r3-sender-restarts
    regions: [r3, r1, r2]
    baseline_version: "2022.12.14"   # what every region runs before any deploy
    seed: 7                          # noise and jitter are a pure function of the seed
    step: 15s                        # one sample every 15s, on a grid aligned to the epoch
    history: 6h                      # data that exists before the start (baselines read it)
    # start: 2023-01-05T12:00:00Z    # default: the first time the fleet log is used

    metrics:
      service_restarts_total: {type: counter, labels: {service: sender}}   # flat: 0/s
      mail_delivered_total:   {type: counter, value: 120, noise: 10, diurnal: 0.2}
      db_cpu_utilization_ratio: {type: gauge, value: 0.35, noise: 0.03, min: 0, max: 1}
      mail_sends_stalled:     {type: gauge, value: 0}
      probe_success: {type: gauge, labels: {module: smtp_banner}, instances: 5, value: 1}

    versions:
      "2023.01.05":
        effects:
          - {metric: service_restarts_total, after: 5m, every: 7m, jitter: 30s, add: 1}
          - {metric: mail_sends_stalled, after: 5m, every: 7m, jitter: 30s, lasting: 2m, add: 40}

    incidents:   # offsets from the scenario start, whatever runs where
      - {metric: db_cpu_utilization_ratio, regions: [r1], after: 3h, for: 20m, ramp: 5m, set: 1}

Metrics
    ``type`` is ``counter`` (the exposed name must end in ``_total``; ``value`` is the
    increase per second; samples are cumulative from the start of history) or ``gauge``
    (``value`` is the level). ``noise`` is the standard deviation of seeded Gaussian
    noise added at every sample (a counter's per-second increase never goes below 0).
    ``diurnal: 0.2`` (or ``{amplitude: 0.2, period: 24h, peak: 15h}``) multiplies the
    value by a sine of ±20% peaking at 15:00 UTC. ``min``/``max`` clamp a gauge.
    ``labels`` are constant; ``region`` is added to every series, and ``instances: N``
    makes N series per region with ``instance`` = ``<region>-1`` … ``<region>-N``.

Effects (a list under ``versions.<v>.effects`` or ``incidents``)
    ``metric`` (required; ``"*"`` for every metric of the scenario), optional
    ``regions`` and ``instances`` (1-based numbers) to narrow it, ``after`` (when it
    starts, default 0s), ``before`` (incidents only: start this much earlier, so an
    effect can already be under way before the scenario start and the first deploy,
    e.g. traffic that was already rising) and ``for`` (how long it lasts, default: as
    long as the version runs / forever), and exactly one of:

    - ``add: X``   add X to the value (a counter: X more per second);
    - ``set: X``   replace the value; ``scale: X`` multiply it;
    - ``bump: X``  a one-off smooth bump over its ``for`` (required): X is added at
      the middle, nothing at either end, a raised cosine in between (a load peak);
    - ``gap: true`` no samples at all (a scrape outage: queries see *no data* once the
      5-minute lookback runs out, exactly as with Prometheus);
    - ``reset: true`` (counters) the process restarts: the counter drops to 0.

    ``ramp: 10m`` grows an ``add``/``set``/``scale`` linearly to full strength. ``every:
    7m`` repeats the effect: each event lasts ``lasting`` (default one step); on a
    counter, ``add`` without ``lasting`` is a number of discrete increments per event
    (``add: 1`` = one restart). ``jitter: 30s`` delays each event by a seeded random
    amount; periodic effects with the same ``after``/``every``/``jitter`` coincide (in
    every metric and instance of a region), so restarts and stalled sends happen together.

Effects apply in the order written (version effects first, then incidents), after noise
and the diurnal sine, so ``set: 1`` is exactly 1. A version that the scenario does not
list is healthy.

Which version runs where comes from the fleet log that the ``sim`` deployer writes
(``fleet``). Every region starts on ``baseline_version``, counted as deployed at the
start of history; it is the scenario's, not the plan's ``change.previous``, because the
source never sees the plan (and a scenario serves many plans): keep the two equal. A
deploy or rollback at time T shows from the first sample after T (the sample at T was
scraped before it); a version's ``after`` still counts from T.
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from guardrail.language.documents import read, validate
from guardrail import ConfigError, Document, Duration, Problem

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SHAPES = ("add", "set", "scale", "bump", "gap", "reset")
EVERY_METRIC = "*"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Diurnal(_Strict):
    amplitude: float = Field(ge=0, le=1, description="relative: 0.2 = ±20% around the value")
    period: Duration = Field(86400.0, gt=0, description="the length of one cycle")
    peak: Duration = Field(54000.0, ge=0, description="offset of the peak within the period (UTC), default 15h")


class Metric(_Strict):
    type: Literal["counter", "gauge"] = Field(description="counter: only grows (use rate()); gauge: a level")
    help: str | None = Field(None, description="the metric's HELP text in the exposition")
    labels: dict[str, str] = Field(default_factory=dict, description="labels of every series (region and instance"
                                   " are added)")
    instances: int | None = Field(None, ge=1, le=1000, description="series per region, labelled instance=<region>-<n>")
    value: float = Field(0.0, description="gauge: the level; counter: the increase per second")
    noise: float = Field(0.0, ge=0, description="standard deviation of seeded Gaussian noise")
    diurnal: Diurnal | None = Field(None, description="a daily cycle: {amplitude, period, peak}, or the amplitude"
                                    " alone", json_schema_extra=lambda schema: schema["anyOf"].insert(
                                        1, {"type": "number", "minimum": 0, "maximum": 1}))
    min: float | None = Field(None, description="values are clipped to at least this")
    max: float | None = Field(None, description="values are clipped to at most this")

    @field_validator("diurnal", mode="before")
    @classmethod
    def _amplitude_shorthand(cls, value: Any) -> Any:
        return {"amplitude": value} if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for name in labels:
            if not LABEL_NAME.match(name) or name.startswith("__"):
                raise ValueError(f"invalid label name {name!r}")
            if name in ("region", "instance"):
                raise ValueError(f"label {name!r} is added by the simulator; remove it")
        return labels


class Effect(_Strict):
    metric: str = Field(description='the metric affected, or "*" for every metric')
    description: str | None = Field(None, description="what the effect stands for, for people")
    regions: list[str] | None = Field(None, min_length=1, description="default: every region")
    instances: list[int] | None = Field(None, min_length=1, description="1-based instance numbers; default: all")
    after: Duration = Field(0.0, ge=0, description="start, from the deploy (versions) or the scenario start (incidents)")
    before: Duration = Field(0.0, ge=0, description="incidents: start this much before the scenario start")
    for_: Duration | None = Field(None, alias="for", gt=0, description="how long it lasts; default: for good")
    every: Duration | None = Field(None, gt=0, description="repeat: one event per period")
    lasting: Duration | None = Field(None, gt=0, description="how long each event lasts; default one step")
    jitter: Duration = Field(0.0, ge=0, description="each event is delayed by a seeded amount up to this")
    ramp: Duration | None = Field(None, gt=0, description="grow to full strength over this long")
    add: float | None = Field(None, description="added to the value (one shape of: add, set, scale, bump, gap, reset)")
    set: float | None = Field(None, description="replaces the value")
    scale: float | None = Field(None, description="multiplies the value")
    bump: float | None = Field(None, description="a one-off smooth bump over its for (required): X at the middle,"
                               " nothing at either end (a load peak)")
    gap: bool = Field(False, description="no samples at all while it lasts (a scrape outage)")
    reset: bool = Field(False, description="a counter drops to 0 (a process restart)")

    @model_validator(mode="after")
    def _one_shape(self) -> Effect:
        given = [name for name in _SHAPES if _given(getattr(self, name))]
        if len(given) != 1:
            found = f"got {', '.join(given)}" if given else "got none"
            raise ValueError(f"an effect needs exactly one of add, set, scale, bump, gap, reset ({found})")
        if given[0] == "bump" and (self.for_ is None or self.every is not None or self.ramp is not None):
            raise ValueError("bump: needs for: (how long the bump lasts), and takes no every: or ramp:")
        if self.every is None and (self.lasting is not None or self.jitter):
            raise ValueError("lasting: and jitter need every:")
        if self.every is not None and self.ramp is not None:
            raise ValueError("ramp: cannot be combined with every:")
        if self.ramp is not None and given[0] in ("gap", "reset"):
            raise ValueError(f"ramp: applies to add, set and scale, not {given[0]}")
        if self.every is not None and (self.lasting or 0.0) + self.jitter > self.every:
            raise ValueError("every: must be at least lasting + jitter, so events do not overlap")
        return self

    @property
    def shape(self) -> str:
        return next(name for name in _SHAPES if _given(getattr(self, name)))


def _given(value: Any) -> bool:
    """``set: 0`` is given; ``gap: false`` is not (careful: ``0 == False`` in Python)."""
    return value is not None and value is not False


class Version(_Strict):
    description: str | None = Field(None, description="what the version is, for people")
    effects: list[Effect] = Field(default_factory=list, description="how the metrics change once a region runs it")


class Scenario(_Strict):
    apiVersion: Literal["guardrail/v1"] = Field(description="the language version: guardrail/v1")
    kind: Literal["Scenario"] = Field(description="this document is a simulated fleet's Scenario")
    name: str | None = Field(None, description="the scenario's name")
    description: str | None = Field(None, description="what the scenario shows, for people")
    service: str | None = Field(None, description="the service the fleet runs")
    regions: list[str] = Field(min_length=1, description="the fleet's regions")
    baseline_version: str = Field(min_length=1, description="what every region runs before any deploy")
    seed: int = Field(0, description="the seed of the noise and jitter: the same seed, the same samples")
    step: Duration = Field(15.0, ge=0.001, description="sample interval")
    history: Duration = Field(21600.0, ge=0, description="data that exists before the start")
    start: datetime | None = Field(None, description="ISO time; default: when the fleet log is first used")
    metrics: dict[str, Metric] = Field(min_length=1, description="every metric by name")
    versions: dict[str, Version] = Field(default_factory=dict, description="each version's effects, by version")
    incidents: list[Effect] = Field(default_factory=list, description="effects of no version: an outage, a load peak")

    @field_validator("regions")
    @classmethod
    def _unique_regions(cls, regions: list[str]) -> list[str]:
        duplicates = sorted({r for r in regions if regions.count(r) > 1})
        if duplicates:
            raise ValueError(f"regions listed twice: {', '.join(duplicates)}")
        return regions

    @field_validator("step")
    @classmethod
    def _whole_milliseconds(cls, step: float) -> float:
        if abs(step * 1000 - round(step * 1000)) > 1e-6:
            raise ValueError("step must be a whole number of milliseconds")
        return step

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, metrics: dict[str, Metric]) -> dict[str, Metric]:
        for name, metric in metrics.items():
            if not METRIC_NAME.match(name):
                raise ValueError(f"invalid metric name {name!r}")
            if metric.type == "counter" and not name.endswith("_total"):
                raise ValueError(f"counter {name!r} must be named {name}_total (as Prometheus exposes counters)")
            if metric.type == "gauge" and name.endswith("_total"):
                raise ValueError(f"gauge {name!r} must not end in _total (OpenMetrics reserves it for counters)")
        return metrics

    @property
    def start_epoch(self) -> float | None:
        """``start`` as epoch seconds (a time without a zone is UTC), or None."""
        if self.start is None:
            return None
        when = self.start if self.start.tzinfo else self.start.replace(tzinfo=timezone.utc)
        return when.timestamp()

    def effects_of(self, version: str) -> list[Effect]:
        entry = self.versions.get(version)
        return entry.effects if entry else []


def reference_problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    """Cross-references pydantic cannot see: effects naming unknown metrics, regions,
    instances, or a ``reset`` on a gauge. Returned as (key path, message)."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    places = [(("versions", v, "effects", i), e) for v, entry in scenario.versions.items() for i, e in enumerate(entry.effects)]
    places += [(("incidents", i), e) for i, e in enumerate(scenario.incidents)]
    for path, effect in places:
        if effect.before and path[0] == "versions":
            found.append((path + ("before",), "before: applies to incidents; a version's effects start at its deploy"))
        if effect.metric == EVERY_METRIC:
            if effect.reset or effect.instances:
                found.append((path + ("metric",), '"*" (every metric) takes no reset: or instances:'))
            for j, region in enumerate(effect.regions or []):
                if region not in scenario.regions:
                    found.append((path + ("regions", j), f"unknown region {region!r}; the scenario has "
                                                         f"{', '.join(scenario.regions)}"))
            continue
        metric = scenario.metrics.get(effect.metric)
        if metric is None:
            close = difflib.get_close_matches(effect.metric, list(scenario.metrics), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(sorted(scenario.metrics))}"
            found.append((path + ("metric",), f"unknown metric {effect.metric!r}{hint}"))
            continue
        for j, region in enumerate(effect.regions or []):
            if region not in scenario.regions:
                known = ", ".join(scenario.regions)
                found.append((path + ("regions", j), f"unknown region {region!r}; the scenario has {known}"))
        for j, number in enumerate(effect.instances or []):
            if not 1 <= number <= (metric.instances or 0):
                message = f"{effect.metric} has {metric.instances or 0} instances; {number} is out of range"
                found.append((path + ("instances", j), message))
        if effect.reset and metric.type != "counter":
            found.append((path + ("reset",), f"reset applies to counters; {effect.metric} is a gauge"))
    return found


def validate_document(doc: Document) -> list[Problem]:
    """The ``Scenario`` document kind's validator (registered with guardrail)."""
    scenario, problems = validate(Scenario, doc.data, doc)
    if scenario is None:
        return problems
    return [doc.problem(path, message) for path, message in reference_problems(scenario)]


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; a ConfigError lists every problem with file:line."""
    doc = read(Path(path))
    if doc.problems:
        raise ConfigError(doc.problems)
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "expected a mapping with apiVersion: guardrail/v1 and kind: Scenario")])
    scenario, problems = validate(Scenario, doc.data, doc)
    problems += [doc.problem(p, m) for p, m in reference_problems(scenario)] if scenario else []
    if problems:
        raise ConfigError(problems)
    return scenario


def check_scenario(scenario: Scenario) -> Scenario:
    """For scenarios built in Python: raise ValueError on dangling references."""
    problems = reference_problems(scenario)
    if problems:
        raise ValueError("; ".join(f"{'.'.join(map(str, p))}: {m}" for p, m in problems))
    return scenario
