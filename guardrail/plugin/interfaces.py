"""What a plugin provides: sources, deployers, incident sinks and actions.

A plugin registers *factories* (usually classes) through the hooks in
``guardrail.plugin.hookspecs``. guardrail calls ``factory(settings, context)`` where
``settings`` is an instance of the factory's ``Settings`` model (validated from the
plan's YAML, so a typo is reported with file:line) and ``context`` is a
``PluginContext``. Subclassing the base classes below is optional; having the
methods is what counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from guardrail.plugin.readings import Probe, RangeReading, Reading, Series

__all__ = ["Action", "ActionRun", "AnyParams", "Deployer", "IncidentSink", "NoSettings", "Outcome",
           "PluginContext", "Probe", "RangeReading", "Reading", "Series", "Source", "Target"]

if TYPE_CHECKING:  # a type only: the plugin contract's data types read no clock
    from guardrail.clock import Clock


class NoSettings(BaseModel):
    """Settings model for plugins that take none: any key is a typo."""

    model_config = ConfigDict(extra="forbid")


class AnyParams(BaseModel):
    """Params model for sources that take no check keys of their own."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class PluginContext:
    """What guardrail lends every plugin instance."""

    clock: Clock
    state_dir: Path
    base_dir: Path = field(default_factory=Path.cwd)
    """Directory relative paths in settings are resolved against (the plan's folder)."""
    service: str = ""


# --- sources -------------------------------------------------------------------------


class Source:
    """Answers probes. ``Params`` validates the check keys it owns."""

    Settings: ClassVar[type[BaseModel]] = NoSettings
    Params: ClassVar[type[BaseModel]] = AnyParams
    blocking_io: ClassVar[bool] = True
    """True when ``measure`` waits on the network: a tick then runs such probes
    concurrently. A source that computes in-process sets it False."""

    def __init__(self, settings: BaseModel, context: PluginContext):
        self.settings, self.context = settings, context

    def measure(self, probe: Probe, at: float) -> Reading:
        """The value(s) at time ``at`` (epoch seconds; the past works where history exists)."""
        raise NotImplementedError

    def measure_range(self, probe: Probe, start: float, end: float, step: float) -> RangeReading:
        """Samples in [start, end] every ``step``; default: ``measure`` at each step."""
        samples = []
        t = start
        while t <= end + 1e-9:
            reading = self.measure(probe, t)
            if reading.error:
                return RangeReading(error=reading.error)
            samples.append((t, [s.value for s in reading.series if s.value == s.value]))
            t += step
        return RangeReading.of(samples)

    def close(self) -> None:
        """Release connections; called once when the rollout ends."""


# --- deployers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One region to move to ``version``; ``key`` is stable across retries and resumes."""

    service: str
    region: str
    version: str
    previous: str
    action: str  # "deploy" or "rollback"
    key: str
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str = ""


class Deployer:
    """Moves a region to a version. Must be idempotent for a given ``Target.key``:
    after a crash guardrail repeats an unfinished call with the same key."""

    Settings: ClassVar[type[BaseModel]] = NoSettings

    def __init__(self, settings: BaseModel, context: PluginContext):
        self.settings, self.context = settings, context

    def deploy(self, target: Target) -> Outcome:
        raise NotImplementedError

    def rollback(self, target: Target) -> Outcome:
        raise NotImplementedError


# --- remediation actions -------------------------------------------------------------


@dataclass(frozen=True)
class ActionRun:
    """One action invocation; ``region`` is None for actions run once per rollout."""

    rollout_id: str
    service: str
    phase: str  # "failure" or "recovery"
    region: str | None
    key: str
    vars: dict[str, Any] = field(default_factory=dict)


class Action:
    Settings: ClassVar[type[BaseModel]] = NoSettings

    def __init__(self, settings: BaseModel, context: PluginContext):
        self.settings, self.context = settings, context

    def templates(self) -> list[str]:
        """The template strings in the settings (so guardrail knows whether the action
        mentions ``{{region}}`` and must run once per region)."""
        return []

    def run(self, run: ActionRun) -> Outcome:
        raise NotImplementedError


# --- incident sinks ------------------------------------------------------------------


class IncidentSink:
    """Receives the lifecycle of the one incident of a failed rollout."""

    Settings: ClassVar[type[BaseModel]] = NoSettings

    def __init__(self, settings: BaseModel, context: PluginContext):
        self.settings, self.context = settings, context

    def notify(self, incident: dict[str, Any], ref: dict[str, Any] | None) -> dict[str, Any] | None:
        """Open, update or resolve (``incident["status"]`` says which). ``ref`` is what
        this sink returned last time for this incident (an issue number...). Return the
        new ref; raise to have the delivery retried later."""
        raise NotImplementedError

    def announce(self, notification: dict[str, Any], ref: dict[str, Any] | None) -> dict[str, Any] | None:
        """Tell a rollout event the plan's ``notify:`` chose. ``notification`` has
        ``event`` (started, wave_deployed, wave_promoted, waiting_for_approval, halted,
        rolled_back, done), ``title`` and ``text`` (sentences), ``rollout_id``, ``service``,
        ``change``, ``wave``, ``at``. Return a ref as ``notify`` does; raise to have it
        retried. A sink that cannot notify leaves this as is: its notifications are refused."""
        raise NotImplementedError
