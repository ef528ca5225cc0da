"""The JSON contract of the command line (``--output json``, alias ``--json``), as models:
``guardrail schema output`` prints the JSON Schema they make.

Every document is one JSON object on stdout, whatever the exit code, with:

- ``command``: which command wrote it (``rollout``, ``incidents flush``...);
- ``outcome``: what came of it (a rollout's outcome, ``valid``, ``listed``..., or for every
  command ``invalid`` (exit 2, with ``problems``), ``locked`` (exit 5) and ``error``);
- ``exit_code``: the exit status of the command that printed it.

A document about one rollout also has ``rollout_id`` and ``state`` (the rollout's state,
from which its outcome is derived: ``guardrail.state.states``). Documents may gain keys;
the ones listed here keep their meaning.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_ID = "https://guardrail.dev/schemas/output.json"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Problem(_Open):
    """Where and what: a YAML node (file, line, column, key path), or a command-line argument (no file)."""

    file: str | None
    line: int | None
    column: int | None
    path: str | None
    message: str


class Failure(_Open):
    """Any command that could not do its work: invalid input (2), locked (5), or another error."""

    command: str
    outcome: Literal["invalid", "locked", "error"]
    exit_code: int = Field(ge=1)
    message: str
    problems: list[Problem] = Field(default_factory=list, description="with outcome invalid: every problem found")
    rollout_id: str | None = None


class RegionView(_Open):
    region: str
    deployed_at: str | None
    rolled_back_at: str | None
    verdict: str


class WarningView(_Open):
    """A check that warned during a bake (``warn_if``, ``mode: warn``); it never decided the rollout."""

    wave: str | None
    region: str
    policy: str
    check: str
    first_at: str = Field(description="when it first warned (ISO 8601)")
    times: int = Field(ge=1, description="how many times it started to warn")
    value: float | None
    threshold: float | None
    reason: str | None


class WaveView(_Open):
    name: str
    regions: list[RegionView]


OUTCOMES = Literal["promoted", "rolled_back", "halted", "rollback_failed"]


class RolloutDocument(_Open):
    """``rollout``, ``resume``, ``abort``, ``rollback``, ``approve`` and ``status``: one rollout as it stands."""

    command: Literal["rollout", "resume", "abort", "rollback", "approve", "status"]
    rollout_id: str
    exit_code: int = Field(ge=0, le=5)
    state: str
    outcome: OUTCOMES | None = Field(description="null while the rollout runs")
    service: str
    version: str
    previous: str | None
    reason: str | None
    started_at: str | None
    finished: bool
    waves: list[WaveView]
    failing_checks: list[dict[str, Any]]
    incident: dict[str, Any] | None
    notices: list[str]
    warnings: list[WarningView] = Field(default_factory=list, description="checks that warned; never failing")


class RequestDocument(_Open):
    """``pause``, and ``abort`` of a rollout another process drives: the request is recorded."""

    command: Literal["pause", "abort"]
    outcome: Literal["pause_requested", "abort_requested"]
    exit_code: Literal[0]
    rollout_id: str
    state: str


class UnlockDocument(_Open):
    command: Literal["unlock"]
    outcome: Literal["unlocked", "not_locked"]
    exit_code: Literal[0]
    service: str
    rollout_id: str | None = Field(description="the rollout that held the lock")
    holder: str | None


class HistoryRow(_Open):
    rollout_id: str
    id: str = Field(description="deprecated: the same as rollout_id")
    service: str
    version: str
    previous: str | None
    state: str
    outcome: OUTCOMES | None
    reason: str | None
    clock: str
    started_at: str | None


class HistoryDocument(_Open):
    command: Literal["history"]
    outcome: Literal["listed"]
    exit_code: Literal[0]
    rollouts: list[HistoryRow]


class ValidateDocument(_Open):
    command: Literal["validate"]
    outcome: Literal["valid"]
    exit_code: Literal[0]
    files: int


class PluginRow(_Open):
    name: str
    version: str
    origin: str
    module: str
    registers: dict[str, list[str]]


class PluginsDocument(_Open):
    command: Literal["plugins"]
    outcome: Literal["listed"]
    exit_code: Literal[0]
    version: str = Field(description="guardrail's own version")
    distribution: str
    plugins: list[PluginRow]


class CheckRow(_Open):
    policy: str
    check: str
    region: str
    status: Literal["pass", "fail", "inconclusive", "warn"]
    value: float | None
    threshold: float | None
    reason: str


class CheckDocument(_Open):
    command: Literal["check"]
    outcome: Literal["pass", "fail", "inconclusive"]
    exit_code: Literal[0, 1, 3]
    checks: list[CheckRow]


class BacktestDocument(_Open):
    command: Literal["backtest"]
    outcome: Literal["pass", "fail", "halt"]
    exit_code: Literal[0, 1, 3]
    region: str
    deployed_at: float
    findings: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    warnings: list[dict[str, Any]] = Field(default_factory=list, description="checks that warned; never failing")


class ExposureRow(_Open):
    region: str
    wave: str
    deployed_at: float | None = Field(description="when the replayed rollout deployed it (epoch seconds)")
    rolled_back_at: float | None
    exposed_for: float = Field(description="seconds on the new version with guardrail")
    history_deployed_at: float | None = Field(description="when history shows it on the new version")
    history_exposed_for: float = Field(description="seconds on the new version in history, up to the replay's end")


class ReplayDocument(_Open):
    """``backtest PLAN.yaml``: a whole plan replayed over history; the keys of a rollout's
    document (its waves, failing checks...) and the replay's answer."""

    command: Literal["backtest"]
    replay: Literal[True]
    outcome: Literal["promoted", "rolled_back", "halted", "incomplete"]
    exit_code: Literal[0, 1, 3]
    rollout_id: str
    state: str = Field(description="the replayed rollout's state")
    started_at: str | None = Field(description="when the replay's clock started (ISO), as a rollout's")
    reason: str | None
    decided_at: float | None
    decided_wave: str | None
    policy: str | None = Field(description="the deciding check's policy, check and region, on a failure")
    check: str | None
    region: str | None
    findings: list[dict[str, Any]]
    exposure: list[ExposureRow]
    deployed: dict[str, float] = Field(description="history's deploy time of each region the replay knew of")
    caveats: list[str]
    recovery: str | None = Field(description="on a failure: why recovery was not verified")
    waves: list[WaveView]
    failing_checks: list[dict[str, Any]]


class SweepRowView(_Open):
    deploy: dict[str, Any] = Field(description="the version (null: a synthetic time), its first time and each region's")
    outcome: Literal["promoted", "rolled_back", "halted", "incomplete", "skipped"]
    reason: str | None
    decided_at: float | None
    policy: str | None
    check: str | None
    region: str | None
    evidence: list[dict[str, Any]] = Field(description="the deciding tick's findings")
    caveats: list[str] = Field(description="what may make the replay's answer less sure")


class SweepDocument(_Open):
    """``backtest PLAN.yaml --sweep``: the plan replayed at every past deploy of a window."""

    command: Literal["backtest"]
    sweep: Literal[True]
    outcome: Literal["clean", "stopped", "halted"]
    exit_code: Literal[0, 1, 3] = Field(description="1: any would have rolled back; 3: none, but any halted; 0: all promoted")
    summary: str
    deploys: int
    replayed: int
    stopped: int
    counts: dict[str, int]
    by_check: dict[str, dict[str, Any]]
    rows: list[SweepRowView]


class PolicyTestFile(_Open):
    path: str
    tests: int
    assertions: int
    failed: int
    mismatches: list[str]
    warnings: list[str] = Field(default_factory=list, description="checks that warned, each a sentence")


class PolicyTestDocument(_Open):
    command: Literal["test"]
    outcome: Literal["passed", "failed"]
    exit_code: Literal[0, 1]
    files: list[PolicyTestFile]


class ReportFile(_Open):
    kind: Literal["html", "junit"]
    path: str
    bytes: int


class ReportDocument(_Open):
    command: Literal["report"]
    outcome: Literal["written"]
    exit_code: Literal[0]
    rollout_id: str
    state: str
    files: list[ReportFile]


class IncidentRow(_Open):
    id: str
    rollout_id: str | None
    status: str
    service: str
    version: str
    spooled: int
    title: str


class IncidentsDocument(_Open):
    command: Literal["incidents list"]
    outcome: Literal["listed"]
    exit_code: Literal[0]
    incidents: list[IncidentRow]


class IncidentDocument(_Open):
    command: Literal["incidents show"]
    outcome: Literal["shown"]
    exit_code: Literal[0]
    rollout_id: str | None
    incident: dict[str, Any]
    deliveries: list[dict[str, Any]]


class FlushDocument(_Open):
    command: Literal["incidents flush"]
    outcome: Literal["delivered", "undelivered"]
    exit_code: Literal[0, 1]
    results: list[dict[str, Any]]
    left: int


DOCUMENTS: tuple[type[BaseModel], ...] = (
    Failure, RolloutDocument, RequestDocument, UnlockDocument, HistoryDocument, ValidateDocument, PluginsDocument,
    CheckDocument, BacktestDocument, ReplayDocument, SweepDocument, PolicyTestDocument, ReportDocument, IncidentsDocument, IncidentDocument,
    FlushDocument,
)


def output_schema() -> dict[str, Any]:
    """The JSON Schema every ``--output json`` document validates against: one of the documents above."""
    from pydantic.json_schema import models_json_schema

    _, top = models_json_schema([(model, "validation") for model in DOCUMENTS], by_alias=True)
    defs = top["$defs"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "guardrail --output json",
        "description": (__doc__ or "").strip(),
        "oneOf": [{"$ref": f"#/$defs/{model.__name__}"} for model in DOCUMENTS],
        "$defs": defs,
    }


def failure(command: str, exc: Exception, exit_code: int) -> dict[str, Any]:
    """The document of a command that failed with ``exc`` (a ``GuardrailError`` or a
    command-line usage error)."""
    from guardrail.errors import ConfigError, LockedError

    doc: dict[str, Any] = {"command": command, "outcome": "error", "exit_code": exit_code, "message": str(exc),
                           "problems": []}
    if isinstance(exc, ConfigError):
        doc.update(outcome="invalid", problems=[vars(p) for p in exc.problems])
    elif isinstance(exc, LockedError):
        doc.update(outcome="locked", service=exc.service, holder=exc.holder, rollout_id=exc.rollout_id)
    elif exit_code == 2:
        param = getattr(exc, "param_hint", None) or getattr(getattr(exc, "param", None), "name", None)
        doc.update(outcome="invalid", problems=[{"file": None, "line": None, "column": None,
                                                 "path": param if isinstance(param, str) else None,
                                                 "message": str(getattr(exc, "message", None) or exc)}])
    else:
        for key in ("rollout_id", "service"):
            if isinstance(getattr(exc, key, None), str):
                doc[key] = getattr(exc, key)
    return doc
