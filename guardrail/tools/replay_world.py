"""What a replay puts in the world's place (``guardrail.tools.replay``): a deployer that
deploys nothing and follows history's deploy times, a clock that ends at ``--until``,
and a state file whose every event says it was a replay."""

from __future__ import annotations

from typing import Any

from guardrail.clock import VirtualClock
from guardrail.language.types import format_duration
from guardrail.plugin.interfaces import Outcome, Target
from guardrail.state.sqlite import SQLiteStore
from guardrail.text import iso


class ReplayStore(SQLiteStore):
    """The replay's state file: every event it stores says ``replay: true``."""

    def add_event(self, rollout_id: str, at: float, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        return super().add_event(rollout_id, at, kind, {**data, "replay": True})


class WindowEnded(Exception):
    """The replay's clock reached ``until``."""


class BoundedClock:
    """The replay's clock, stopping the replay at ``until``."""

    def __init__(self, clock: VirtualClock, until: float | None):
        self.clock, self.until = clock, until

    def now(self) -> float:
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        if self.until is not None and self.clock.now() + seconds > self.until + 1e-6:
            raise WindowEnded()
        self.clock.sleep(seconds)


class ReplayDeployer:
    """Deploys and rolls back nothing: records when guardrail would have, and moves the
    replay's clock on to the time history shows a region on the new version when the
    engine deploys it earlier (see the module's docstring)."""

    def __init__(self, clock: VirtualClock, history: dict[str, float]):
        self.clock, self.history = clock, history
        self.deployed: dict[str, float] = {}
        self.rolled_back: dict[str, float] = {}
        self.caveats: list[str] = []

    def deploy(self, target: Target) -> Outcome:
        region, now = target.region, self.clock.now()
        at = self.history.get(region)
        if at is None:  # "as if guardrail had run it": history followed guardrail's deploys
            at = self.history[region] = now
        elif at < now:
            self.caveats.append(
                f"{region} ran {target.version} in history from {iso(at)}, {format_duration(now - at)} before "
                f"guardrail would have deployed it: until then the replay took it for a region on {target.previous} "
                "(a control region, its baselines), while its readings were already of the new version")
        self.clock.advance_to(at)
        self.deployed[region] = max(now, at)
        return Outcome(True, f"replay: {region} runs {target.version} in history from {iso(at)}; nothing deployed")

    def rollback(self, target: Target) -> Outcome:
        self.rolled_back[target.region] = self.clock.now()
        return Outcome(True, f"replay: the rollback of {target.region} to {target.previous} is recorded, not run")

    def validate_ready(self, regions: list[dict[str, Any]]) -> list:
        return []


__all__ = ["BoundedClock", "ReplayDeployer", "ReplayStore", "WindowEnded"]
