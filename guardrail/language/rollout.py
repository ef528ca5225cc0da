"""``kind: Rollout``: one change to one service, deployed region by region in waves."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from guardrail.language.policy import NAME_PATTERN
from guardrail.language.types import Duration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Change(_Strict):
    version: str = Field(min_length=1, description="the version being deployed", examples=["2.4.1"])
    previous: str = Field(min_length=1, description="the version rollbacks return to")
    description: str | None = Field(None, description="what the change is, for people: shown in reports and incidents")
    ticket: str | None = Field(None, description="the change ticket, shown in reports and incidents", examples=["CHG-1234"])


class PluginRef(_Strict):
    """``{plugin: NAME, with: {...}}``; ``with`` is validated by the plugin's Settings."""

    plugin: str = Field(description="the plugin's name (guardrail plugins lists them)")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="the plugin's settings")


class Region(_Strict):
    vars: dict[str, Any] = Field(default_factory=dict, description="template variables for this region")
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-region source overrides")


class GateSettings(_Strict):
    url: str = Field(pattern=r"^https?://", description="POSTed the rollout and the wave before the wave deploys")
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization: Bearer ${env:TOKEN}")
    timeout: Duration = Field(10.0, gt=0, description="per request")
    retries: int = Field(3, ge=0, le=20, description="retries of a 5xx, 408, 429 or no answer; then the rollout halts")
    backoff: Duration = Field(2.0, ge=0, description="first retry delay; doubles each time")


class Gate(_Strict):
    """An outside system that must say yes before a wave deploys (a change ticket being
    approved, a confirm-promotion service): 2xx proceeds, another 4xx halts, 5xx and
    timeouts are retried within ``retries`` and then halt."""

    plugin: Literal["webhook"] = Field(description="the gate is a webhook")
    with_: GateSettings = Field(alias="with", description="where and how to ask")


class Wave(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="unique in the plan", examples=["canary", "main"])
    regions: list[str] = Field(min_length=1, description="regions deployed in this wave, each declared under regions:")
    bake: Duration = Field(ge=0, description="how long the policies judge the wave's regions before it is promoted")
    parallel: bool = Field(False, description="deploy the wave's regions at once rather than one after another")
    approval: Literal["auto", "manual"] = Field("auto", description="manual: wait (exit 3) for guardrail approve"
                                                " before the wave deploys")
    min_coverage: float = Field(1.0, gt=0, le=1, description="the share of the bake every check of every deployed"
                                " region must cover with passing, fresh evaluations")
    max_extension: Duration | None = Field(None, ge=0, description="how long the bake may run past its end to make up"
                                           " uncovered time before it halts; default: the bake itself")
    gate: Gate | None = Field(None, description="asked before the wave deploys: {plugin: webhook, with: {url: ...}}")


NOTIFY_EVENTS = ("started", "wave_deployed", "wave_promoted", "waiting_for_approval", "halted", "rolled_back", "done",
                 "warning")
NotifyEvent = Literal["started", "wave_deployed", "wave_promoted", "waiting_for_approval", "halted", "rolled_back",
                      "done", "warning"]


class Notify(PluginRef):
    """An incident sink (slack, webhook...) that is also told the chosen rollout events."""

    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS), min_length=1,
                                      description="which events; default: all of them")


class OnFailure(_Strict):
    rollback: Literal["all-deployed", "failing-wave"] = Field(
        "all-deployed", description="which regions return to the previous version: every one deployed, or only the"
        " failing wave's")
    actions: list[PluginRef] = Field(default_factory=list, description="action plugins run after the rollback")
    incident: PluginRef | list[PluginRef] = Field(
        default_factory=lambda: PluginRef(plugin="journal"),
        description="incident sink(s): one {plugin, with} or a list of them; default: journal")
    update_every: Duration = Field(1800.0, gt=0, description="while the incident is open, send an update this often"
                                                              " (on the rollout's clock)")
    delivery_grace: Duration = Field(10.0, ge=0, description="when the rollout ends, wait this long for incident "
                                     "updates in flight; what is not delivered by then stays spooled for "
                                     "`guardrail incidents flush` (the rollback never waits for a sink)")

    def incident_refs(self) -> list[PluginRef]:
        """The incident sinks as a list, whichever way the plan wrote them."""
        return list(self.incident) if isinstance(self.incident, list) else [self.incident]


class OnRecovery(_Strict):
    actions: list[PluginRef] = Field(default_factory=list, description="action plugins run once recovery is verified")


class VerifyRecovery(_Strict):
    for_: Duration = Field(900.0, alias="for", gt=0, description="the failing checks must pass this long")
    timeout: Duration | None = Field(None, description="give up (exit 4) after this long; default 4x `for`")
    checks: Literal["failing", "all"] = Field("failing", description="which checks must pass: those that failed,"
                                              " or all of them")


class Windows(_Strict):
    deny: list[str] = Field(default_factory=list, description=(
        'change freezes, checked before every wave: "Fri 15:00-Mon 08:00", "Mon-Fri 22:00-23:00", '
        '"2026-12-24 00:00 - 2026-12-27 00:00"'), examples=[["Fri 15:00-Mon 08:00", "Mon-Fri 22:00-23:00"]])
    timezone: str = Field("UTC", description="the IANA time zone the deny windows are read in",
                          examples=["UTC", "Europe/Paris", "America/New_York"])


class Preflight(_Strict):
    on_inconclusive: Literal["block", "proceed"] = Field(
        "block", description="a check that cannot be judged before the change (no data, stale, source down): "
        "refuse to start (block) or start anyway (proceed)")


class Rollout(_Strict):
    apiVersion: Literal["guardrail/v1"] = Field(description="the language version: guardrail/v1")
    kind: Literal["Rollout"] = Field(description="this document is a Rollout plan")
    service: str = Field(pattern=NAME_PATTERN, description="the service changed; {{service}} in templates",
                         examples=["mail-sender"])
    change: Change = Field(description="what is deployed, and what a rollback returns to")
    deploy: PluginRef = Field(description="the deployer plugin and its settings")
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict, description="source settings by source name; a"
                                               " name other than a plugin's says which with plugin:")
    regions: dict[str, Region] = Field(description="every region by name, with its template variables and source"
                                       " overrides")
    waves: list[Wave] = Field(min_length=1, description="deployed in order; each bakes before the next starts")
    policies: list[str] = Field(min_length=1, description="policy files, relative to this plan")
    preflight: bool | Preflight = Field(False, description="refuse to start while a policy already fails, or"
                                        " cannot be judged: true, or {on_inconclusive: block|proceed}")
    on_failure: OnFailure = Field(default_factory=OnFailure, description="what a failed check sets off: rollback,"
                                  " actions, an incident")
    on_recovery: OnRecovery = Field(default_factory=OnRecovery, description="what runs once recovery is verified")
    verify_recovery: VerifyRecovery = Field(default_factory=VerifyRecovery, description="after a rollback: how long"
                                            " the checks must pass again")
    windows: Windows = Field(default_factory=Windows, description="change freezes: when no wave may start")
    notify: list[Notify] = Field(default_factory=list, description="sinks told of rollout events (not only incidents)")
    clock: Literal["real", "virtual"] = Field("real", description="virtual: simulated time (the sim fleet, demos, tests)")
    vars: dict[str, Any] = Field(default_factory=dict, description="template variables shared by all regions")

    def region_vars(self, region: str) -> dict[str, Any]:
        """Every template variable for ``region``: built-ins, plan vars, region vars."""
        out: dict[str, Any] = dict(self.vars)
        out.update(self.regions[region].vars if region in self.regions else {})
        out.update(
            region=region,
            service=self.service,
            version=self.change.version,
            previous=self.change.previous,
        )
        return out

    @property
    def preflight_settings(self) -> Preflight | None:
        """The preflight settings, or None when there is no preflight."""
        if self.preflight is True:
            return Preflight()
        return self.preflight or None

    def wave_of(self, region: str) -> Wave:
        return next(w for w in self.waves if region in w.regions)
