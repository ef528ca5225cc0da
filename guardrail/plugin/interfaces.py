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
import threading
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

from guardrail.plugin.readings import Probe, RangeReading, Reading, Series

__all__ = ["Action", "ActionRun", "AnyParams", "Deployer", "IncidentSink", "NoSettings", "Outcome", "Readiness",
           "PluginContext", "Probe", "QueryProblem", "RangeReading", "Reading", "Series", "SinkError", "Source",
           "Target"]

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
    """Where the plugin keeps local files: the state file's folder, or with a database state
    ``GUARDRAIL_STATE_DIR``, else the working folder."""
    base_dir: Path = field(default_factory=Path.cwd)
    """Directory relative paths in settings are resolved against (the plan's folder)."""
    service: str = ""
    redact: Callable[[str], str] = field(default=lambda text: text)
    """Masks the plan's secrets in ``text``, in every encoding (``guardrail.secrets``). A
    plugin quoting what a server answered passes it through this *before* shortening it:
    a server may echo a request's credentials, and half a secret cut off is no longer
    recognisable afterwards."""
    rollout_id: str = ""
    """The rollout this instance works for; empty outside one (``check``, ``backtest``)."""


# --- sources -------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryProblem:
    """Why a source's query language refuses a query (``Source.check_query``)."""

    message: str
    offset: int | None = None
    """Where in the query text the problem is (0-based), when the parser can tell;
    None points at the query's start."""


class Source:
    """Answers probes. ``Params`` validates the check keys it owns."""

    Settings: ClassVar[type[BaseModel]] = NoSettings
    Params: ClassVar[type[BaseModel]] = AnyParams
    blocking_io: ClassVar[bool] = True
    """True when ``measure`` waits on the network: a tick then runs such probes
    concurrently. A source that computes in-process sets it False."""
    live_name: ClassVar[str] = "the source"
    """Who rejects a query, in ``guardrail validate --live`` messages."""
    parse_error: ClassVar[Callable[..., str | None] | None] = None
    """Optional: a method ``parse_error(self, query) -> str | None`` asking the live
    backend whether it parses a check's query (``guardrail validate --live``); None
    when the source cannot tell."""
    check_query: ClassVar[Callable[[str], QueryProblem | None] | None] = None
    """Optional: a static method ``check_query(query) -> QueryProblem | None`` saying,
    offline and without an instance, whether the source's query language accepts a
    check's ``query`` (``guardrail validate``), its ``{{templates}}`` filled with a
    placeholder value. None when the source has no query language to check."""

    def __init__(self, settings: BaseModel, context: PluginContext):
        self.settings, self.context = settings, context

    @staticmethod
    def default_fail_if(params: BaseModel) -> str | None:
        """The comparison a check of this source implies when it gives no ``fail_if``
        (``min_success_ratio: 0.95`` implies ``< 0.95``); None when it must give one."""
        return None

    def escape(self, value: str) -> str:
        """Escape a template value for where it lands in this source's params (a PromQL
        string, a URL...). Declaring a ``before`` parameter, ``escape(value, before)``,
        gets the template text before the placeholder, to tell one place from another."""
        return value

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
    started: bool = True
    """Whether the call may have changed anything: False when it never ran (a program
    that does not exist or cannot be executed). A region whose deploy never started
    runs the old version: it is not rolled back."""


Readiness = list[tuple[tuple[str | int, ...], str]]
"""Problems that keep a plugin from acting: (key path inside its ``with``, message)."""


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

    def validate_ready(self, regions: list[dict[str, Any]]) -> Readiness:
        """Called once before the first deploy of a rollout, with each region's template
        variables: can this deployer act at all (its programs exist, its URL parses)?
        A problem refuses the rollout as a usage error (exit 2, at the key in the plan),
        nothing deployed. Default: no check."""
        return []


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

    def validate_ready(self, regions: list[dict[str, Any]]) -> Readiness:
        """As ``Deployer.validate_ready``, for a remediation action of the plan."""
        return []


# --- incident sinks ------------------------------------------------------------------


class SinkError(Exception):
    """A notification that did not reach the service; ``retryable`` says whether trying
    again later can help (a 429 or a 5xx) or not (a 400 or a 401: fix the settings)."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None):
        super().__init__(message)
        self.retryable, self.status = retryable, status


class IncidentSink:
    """Receives the lifecycle of the one incident of a failed rollout. ``notify`` raises
    ``SinkError`` when the service refused or could not be reached."""

    Settings: ClassVar[type[BaseModel]] = NoSettings
    stop: threading.Event | None = None
    """Optional: an event the sink's waits (a 429's Retry-After) watch; guardrail sets it
    to cut them short when the process must end."""

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
        rolled_back, done, warning), ``title`` and ``text`` (sentences), ``rollout_id``, ``service``,
        ``change``, ``wave``, ``at``. Return a ref as ``notify`` does; raise to have it
        retried. A sink that cannot notify leaves this as is: its notifications are refused."""
        raise NotImplementedError
