"""``sim`` deployer: moves simulated regions between versions by appending to the fleet log.

Idempotent per key, as every deployer must be: a call whose key is already in the log
did its work before a crash and returns success without writing or waiting again.
``fail_regions`` / ``fail_rollback_regions`` make the named regions refuse, so the
engine's failed-deploy and failed-rollback paths can be exercised; ``delay`` makes a
deploy take time on the plan's clock (virtual time in tests).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from guardrail import Deployer, Duration, Outcome, PluginContext, Target

from .source import open_fleet


class SimDeployer(Deployer):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        scenario: str = Field(description="scenario file, relative to the plan")
        fleet: str | None = Field(None, description="fleet log shared with the sim source; default: in the state dir")
        fail_regions: list[str] = Field(default_factory=list, description="regions whose deploy fails")
        fail_rollback_regions: list[str] = Field(default_factory=list, description="regions whose rollback fails")
        delay: Duration = Field(0.0, ge=0, description="how long each deploy or rollback takes")

    def __init__(self, settings, context: PluginContext):
        super().__init__(settings, context)
        self.scenario, self.fleet = open_fleet(settings.scenario, settings.fleet, context)

    def deploy(self, target: Target) -> Outcome:
        return self._move(target, target.version, "deploy", self.settings.fail_regions)

    def rollback(self, target: Target) -> Outcome:
        return self._move(target, target.previous, "rollback", self.settings.fail_rollback_regions)

    def _move(self, target: Target, version: str, action: str, failing: list[str]) -> Outcome:
        region = target.region
        if region not in self.scenario.regions:
            return Outcome(False, f"sim: region {region!r} is not in the scenario (regions: {', '.join(self.scenario.regions)})")
        if self.fleet.has_key(target.key):
            return Outcome(True, f"sim: {action} of {version} to {region} already done (key {target.key})")
        clock = self.context.clock
        if self.scenario.start_epoch is None:
            self.fleet.ensure_start(clock.now())  # history must begin before the first change
        clock.sleep(self.settings.delay)
        if region in failing:
            which = "fail_regions" if action == "deploy" else "fail_rollback_regions"
            return Outcome(False, f"sim: {action} of {version} to {region} failed ({region} is in {which})")
        if not self.fleet.record(region, version, action, target.key, clock.now()):
            return Outcome(True, f"sim: {action} of {version} to {region} already done (key {target.key})")
        return Outcome(True, f"sim: {region} runs {version}")
