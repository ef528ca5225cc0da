"""When did a change reach each region in history: the deploy times a replay starts from.

Why: a whole-plan replay needs the time the change reached each region. People rarely
have those times written down, but most services export a version series
(``app_build_info{service="mail-sender", region="r3", version="2023.01.05"} 1``): the
first sample of a region's series with the new version is when that region got it.

``find_deploy`` reads one version's times; ``find_rollouts`` every version that started
in a window (what the false-alarm sweep replays); ``every`` makes synthetic deploy times
every N hours when no version series exists.

How the times are read: one instant query at the window's end,
``min_over_time(timestamp(METRIC)[WINDOW:STEP])``, through the plan's Prometheus source
(or the settings given instead, which replace the plan's as in a replay). ``timestamp``
of a selector is the time of the sample itself, so each series answers with its first
sample in the window, to within one scrape interval (``STEP``: the source's scrape
interval when it knows it). A series whose first sample is older than the window's
start was already running when the window opened: its region was on that version
before, which is not a deploy the window can date (a rollout under way when the window
opens is left out of ``find_rollouts``).

Mapping to the plan. The region label's value (``region`` unless told) is matched to a
plan region by the template ``region_value`` rendered with that region's variables
(``{{region}}`` unless told: ``{{aws_region}}`` when the region's ``vars`` name the
cloud region). A region whose source differs (a region's own ``sources:`` override) is
asked through its own source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from guardrail.clock import SystemClock
from guardrail.errors import GuardrailError, UsageError
from guardrail.language.loader import Plan
from guardrail.plugin.interfaces import PluginContext
from guardrail.plugin.readings import Probe
from guardrail.plugin.templates import render
from guardrail.text import iso, parse_duration

MAX_STEPS = 20_000
"""Sub-query steps per window at most: a month at a 15 s scrape interval would be 172,800,
so long windows read first samples at a coarser step (``VersionMetric.step`` says which)."""
DEFAULT_STEP = 60.0
QUERY_TIMEOUT = 120.0
"""Seconds the one query of a window may take at least (a plan's shorter source timeout is raised to it)."""


@dataclass(frozen=True)
class VersionMetric:
    """Where history says which version each region ran."""

    metric: str
    """A PromQL selector (``app_build_info{service="mail-sender"}``) or any expression
    whose series carry the region and version labels."""
    region_label: str = "region"
    version_label: str = "version"
    region_value: str = "{{region}}"
    """The region label's value for a plan region, rendered with the region's variables."""
    source: str = "prometheus"
    """The plan source asked (its settings overridden by ``sources`` when given)."""


@dataclass
class Deploy:
    """One change reaching the plan's regions: a version found in history, or a synthetic time."""

    version: str | None
    """None for a synthetic deploy time (``every``)."""
    regions: dict[str, float] = field(default_factory=dict)
    """Plan region -> when it first showed the version (epoch seconds), earliest first."""
    never: list[str] = field(default_factory=list)
    """Plan regions that never showed the version in the window."""
    before: list[str] = field(default_factory=list)
    """Plan regions already on the version when the window opened (their time is the window's start)."""
    at: float = 0.0
    """The first region's time (a synthetic deploy's time)."""

    @property
    def label(self) -> str:
        return self.version if self.version is not None else iso(self.at)

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "at": self.at, "at_iso": iso(self.at),
                "regions": {r: {"at": t, "at_iso": iso(t)} for r, t in self.regions.items()},
                "never": list(self.never), "before": list(self.before)}


def every(start: float, end: float, period: float) -> list[Deploy]:
    """Synthetic deploy times ``start``, ``start + period``... before ``end``."""
    if period <= 0:
        raise UsageError("--every must be a positive duration")
    if end <= start:
        raise UsageError("--to must be after --from")
    count = int(math.ceil((end - start) / period - 1e-9))
    return [Deploy(None, at=start + k * period) for k in range(count)]


def find_deploy(plan: Plan, registry: Any, spec: VersionMetric, version: str, *, start: float, end: float,
                sources: dict[str, dict[str, Any]] | None = None) -> Deploy:
    """When each plan region first showed ``version`` between ``start`` and ``end``.

    Raises ``UsageError`` when no series shows the version at all (with the versions
    that were seen), and for every reason ``first_seen`` gives."""
    seen, step = first_seen(plan, registry, spec, start=start, end=end, sources=sources)
    found = {region: at for (region, v), at in seen.items() if v == version}
    if not found:
        versions = sorted({v for _, v in seen})
        raise UsageError(f"no series of {spec.metric} shows {spec.version_label}={version!r} between "
                         f"{iso(start)} and {iso(end)} in the plan's regions; versions seen: {_listed(versions)}")
    return _deploy(plan, version, found, start, step)


def find_rollouts(plan: Plan, registry: Any, spec: VersionMetric, *, start: float, end: float,
                  sources: dict[str, dict[str, Any]] | None = None) -> list[Deploy]:
    """Every version that reached its first plan region inside the window, oldest first.
    A version some region already ran when the window opened started before it: left out."""
    seen, step = first_seen(plan, registry, spec, start=start, end=end, sources=sources)
    by_version: dict[str, dict[str, float]] = {}
    for (region, version), at in seen.items():
        by_version.setdefault(version, {})[region] = at
    deploys = [_deploy(plan, version, found, start, step) for version, found in by_version.items()]
    return sorted((d for d in deploys if not d.before), key=lambda d: (d.at, d.label))


def _deploy(plan: Plan, version: str, found: dict[str, float], start: float, step: float) -> Deploy:
    before = [r for r in plan.rollout.regions if r in found and found[r] < start + step]
    ordered = dict(sorted(((r, max(at, start)) for r, at in found.items()), key=lambda item: (item[1], item[0])))
    never = [r for r in plan.rollout.regions if r not in found]
    return Deploy(version, ordered, never, before, at=min(ordered.values()))


def first_seen(plan: Plan, registry: Any, spec: VersionMetric, *, start: float, end: float,
               sources: dict[str, dict[str, Any]] | None = None) -> tuple[dict[tuple[str, str], float], float]:
    """({(plan region, version): first sample time}, the step it was read at).

    Raises ``UsageError`` for a query the source rejects, no series in the window,
    series without the region or version label, or region values matching no plan region;
    ``GuardrailError`` when the source cannot be asked."""
    if end <= start:
        raise UsageError("--to must be after --from")
    if not plan.rollout.regions:
        raise UsageError("the plan names no regions")
    groups: dict[str, tuple[str, dict[str, Any], list[str]]] = {}
    for region in plan.rollout.regions:
        plugin, settings = _source_config(plan, spec.source, region, sources or {})
        groups.setdefault(repr((plugin, sorted(settings.items()))), (plugin, settings, []))[2].append(region)
    values: dict[str, dict[str, str]] = {}  # group -> label value -> plan region
    for key, (_, _, regions) in groups.items():
        for region in regions:
            try:
                value = render(spec.region_value, plan.rollout.region_vars(region))
            except KeyError as exc:
                raise UsageError(f"--region-value {spec.region_value!r}: region {region!r} has no variable "
                                 f"{exc.args[0]!r}") from None
            other = values.setdefault(key, {}).setdefault(value, region)
            if other != region:
                raise UsageError(f"--region-value {spec.region_value!r} is {value!r} for both {other!r} and "
                                 f"{region!r}: their series could not be told apart")
    seen: dict[tuple[str, str], float] = {}
    step = 0.0
    for key, (plugin, settings, regions) in groups.items():
        found, asked = _ask(plan, registry, spec, plugin, settings, values[key], start=start, end=end)
        seen.update({k: at for k, at in found.items() if k[0] in regions})
        step = max(step, asked)
    return seen, step


def _source_config(plan: Plan, name: str, region: str, overrides: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    if name not in plan.rollout.sources and name not in overrides:
        hint = " (give one with --prometheus URL)" if name == "prometheus" else ""
        raise UsageError(f"the plan has no source {name!r} to read the version series from{hint}")
    if name in overrides:  # as a replay does: the given settings replace the plan's and its regions'
        settings = dict(overrides[name])
    else:
        settings = dict(plan.rollout.sources.get(name, {}))
        if region in plan.rollout.regions:
            settings.update(plan.rollout.regions[region].sources.get(name, {}))
    return settings.pop("plugin", name), settings


def _ask(plan: Plan, registry: Any, spec: VersionMetric, plugin: str, settings: dict[str, Any],
         values: dict[str, str], *, start: float, end: float) -> tuple[dict[tuple[str, str], float], float]:
    from pydantic import ValidationError

    if plugin not in registry.sources:
        raise UsageError(f"source {spec.source!r} names the plugin {plugin!r}, which is not installed")
    context = PluginContext(clock=SystemClock(), state_dir=plan.path.parent, base_dir=plan.path.parent,
                            service=plan.rollout.service)
    fields = getattr(getattr(registry.get("sources", plugin), "Settings", None), "model_fields", {})
    settings = dict(settings)
    if "freshness" in fields:  # the companion query would count every sample of the window again
        settings["freshness"] = False
    if "timeout" in fields:  # one query over weeks of history, not a bake's quick reading
        given = settings.get("timeout")
        settings["timeout"] = f"{max(parse_duration(given) if given else 0.0, QUERY_TIMEOUT):g}s"
    try:
        source = registry.build("sources", plugin, settings, context)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"source {spec.source!r}: {where}: {first['msg']}") from None
    try:
        rejected = _rejected(source, spec.metric)
        if rejected is not None:
            raise UsageError(f"--version-metric {spec.metric!r}: {getattr(source, 'live_name', plugin)} rejects it: {rejected}")
        interval = getattr(source, "scrape_interval", None)
        step = float(interval()) if callable(interval) else DEFAULT_STEP
        window = math.ceil(end - start)
        step = max(math.ceil(step), math.ceil(window / MAX_STEPS))
        query = f"min_over_time(timestamp({spec.metric})[{window}s:{step}s])"
        reading = source.measure(Probe("version-metric", "", {"query": query}), end)
    finally:
        source.close()
    if reading.error is not None:
        if "got range vector" in reading.error:
            raise UsageError(f"--version-metric {spec.metric!r}: expected the series themselves (an instant vector "
                             "such as app_build_info{service=\"mail-sender\"}), not a range of them")
        raise GuardrailError(f"--version-metric: {reading.error}")
    if not reading.series:
        raise UsageError(f"no series of {spec.metric} between {iso(start)} and {iso(end)}: is the selector right, "
                         f"and is the metric scraped by this Prometheus?")
    for label in (spec.region_label, spec.version_label):
        if not any(label in s.labels for s in reading.series):
            names = sorted({name for s in reading.series for name in s.labels})
            option = "--region-label" if label == spec.region_label else "--version-label"
            raise UsageError(f"the series of {spec.metric} carry no {label!r} label (their labels: {_listed(names)}): "
                             f"name the label with {option}")
    found: dict[tuple[str, str], float] = {}
    unmatched: set[str] = set()
    for series in reading.series:
        value, version = series.labels.get(spec.region_label), series.labels.get(spec.version_label)
        if value is None or version is None:
            continue
        region = values.get(value)
        if region is None:
            unmatched.add(value)
            continue
        key = (region, version)
        found[key] = min(found.get(key, math.inf), series.value)
    if not found:
        raise UsageError(f"the {spec.region_label!r} values of {spec.metric} ({_listed(sorted(unmatched))}) match no "
                         f"region of the plan ({_listed(sorted(values))}): map them with --region-value, "
                         f"e.g. '{{{{aws_region}}}}' for a region variable aws_region")
    return found, float(step)


def _rejected(source: Any, query: str) -> str | None:
    """The source's objection to ``query``, when it can tell one (``Source.parse_error``)."""
    check = getattr(source, "parse_error", None)
    if check is None:
        return None
    try:
        return check(query)
    except Exception:  # the source cannot be asked: the query itself will say why
        return None


def _listed(names: list[str], most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return (shown + f" and {len(names) - most} more") if len(names) > most else (shown or "none")


__all__ = ["Deploy", "VersionMetric", "every", "find_deploy", "find_rollouts", "first_seen"]
