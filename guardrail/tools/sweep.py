"""``guardrail backtest PLAN.yaml --sweep``: how often would this plan have stopped a rollout?

Why: before a policy guards production, its author wants to know how it would have
treated every rollout of the last weeks: "stopped 2 of 40, both on queue-depth-growth
in r3 at the 08:00 batch" says whether it catches what it should and how often it
cries wolf. A sweep replays the plan (``guardrail.tools.replay``) at every past deploy
in a window, found in a version series (``guardrail.tools.deploys.find_rollouts``), or
at synthetic deploy times every N hours (``deploys.every``), and counts the outcomes.

Each replay is a whole one, independent of the others: its own virtual rollout, its own
baselines from the hour before its deploy.

A version that never reached the plan's first wave cannot be replayed (the replay has
nothing to bake): it is listed as ``skipped``, not counted. A window with nothing to
replay is an error, not a clean sweep: CI must not pass a policy on no evidence at all.
Every other error (a plan the replay refuses) stops the sweep: it would refuse every
deploy alike.

Exit code (``SweepResult.exit_code``), for CI on a policy pull request: 1 when any
replay would have rolled back, else 3 when any would have halted (or could not answer
for every wave: ``incomplete``), else 0.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from guardrail.errors import UsageError
from guardrail.language.loader import load_plan
from guardrail.language.types import format_duration
from guardrail.plugin.manager import GuardrailPluginManager, get_plugin_manager
from guardrail.text import iso
from guardrail.tools.deploys import Deploy, VersionMetric, every, find_rollouts
from guardrail.tools.replay import ReplayResult, replay_plan


@dataclass
class SweepRow:
    """One past deploy and what the plan would have done with it."""

    deploy: Deploy
    outcome: str
    """``promoted``, ``rolled_back``, ``halted``, ``incomplete`` (as a replay) or ``skipped``."""
    reason: str | None = None
    decided_at: float | None = None
    wave: str | None = None
    policy: str | None = None
    check: str | None = None
    region: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    """The deciding tick's findings: region, policy, check, value, threshold, query, reason..."""
    ended_at: float | None = None
    """When the replay's clock stopped."""
    caveats: list[str] = field(default_factory=list)
    """The replay's caveats, and a next deploy that history made before this replay ended."""

    @property
    def stopped(self) -> bool:
        return self.outcome == "rolled_back"

    def as_dict(self) -> dict[str, Any]:
        return {"deploy": self.deploy.as_dict(), "outcome": self.outcome, "reason": self.reason,
                "decided_at": self.decided_at, "decided_at_iso": iso(self.decided_at) if self.decided_at else None,
                "wave": self.wave, "policy": self.policy, "check": self.check, "region": self.region,
                "evidence": self.evidence, "caveats": self.caveats}


@dataclass
class SweepResult:
    plan: str
    start: float
    end: float
    found_by: str
    """How the deploys were found: the version series, or ``every 6h``."""
    rows: list[SweepRow] = field(default_factory=list)

    @property
    def replayed(self) -> list[SweepRow]:
        return [row for row in self.rows if row.outcome != "skipped"]

    @property
    def stopped(self) -> list[SweepRow]:
        return [row for row in self.rows if row.stopped]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(row.outcome for row in self.rows))

    @property
    def by_check(self) -> dict[str, dict[str, Any]]:
        """``policy/check`` -> how many replays it stopped, in which regions, at which times of day (UTC)."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.stopped:
            entry = out.setdefault(f"{row.policy}/{row.check}", {"stopped": 0, "regions": {}, "hours_utc": {}})
            entry["stopped"] += 1
            entry["regions"][row.region] = entry["regions"].get(row.region, 0) + 1
            hour = iso(row.decided_at)[11:13] + ":00" if row.decided_at is not None else "-"
            entry["hours_utc"][hour] = entry["hours_utc"].get(hour, 0) + 1
        return out

    @property
    def exit_code(self) -> int:
        """1 if any replay would have rolled back, else 3 if any would have halted or was
        incomplete, else 0."""
        outcomes = {row.outcome for row in self.rows}
        if "rolled_back" in outcomes:
            return 1
        return 3 if outcomes & {"halted", "incomplete"} else 0

    @property
    def summary(self) -> str:
        """``would have stopped 2 of 22: w08 (errors/error-rate in r3), ...``"""
        stopped = self.stopped
        text = f"would have stopped {len(stopped)} of {len(self.replayed)}"
        if stopped:
            text += ": " + ", ".join(f"{row.deploy.label} ({row.policy}/{row.check} in {row.region})" for row in stopped)
        halted = [row for row in self.rows if row.outcome in ("halted", "incomplete")]
        if halted:
            text += f"; halted {len(halted)}: " + ", ".join(row.deploy.label for row in halted)
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"replay": True, "sweep": True, "plan": self.plan, "from": self.start, "from_iso": iso(self.start),
                "to": self.end, "to_iso": iso(self.end), "found_by": self.found_by, "summary": self.summary,
                "deploys": len(self.rows), "replayed": len(self.replayed), "stopped": len(self.stopped),
                "counts": self.counts, "by_check": self.by_check, "exit_code": self.exit_code,
                "rows": [row.as_dict() for row in self.rows]}


def sweep(plan_path: str | Path, *, start: float, end: float, version_metric: VersionMetric | None = None,
          period: float | None = None, sources: dict[str, dict[str, Any]] | None = None,
          variables: dict[str, Any] | None = None, pm: GuardrailPluginManager | None = None,
          on_row: Callable[[SweepRow], None] | None = None) -> SweepResult:
    """Replay the plan at every deploy between ``start`` and ``end``: the rollouts
    ``version_metric`` shows, or one every ``period`` seconds (exactly one of the two).

    :param sources: as ``replay_plan``'s: point the plan's sources at history.
    :param on_row: called with each row as its replay ends (progress for a long sweep).
    """
    if (version_metric is None) == (period is None):
        raise UsageError("a sweep needs the past deploys: --version-metric METRIC, or --every DURATION")
    if end <= start:
        raise UsageError("--to must be after --from")
    pm = pm or get_plugin_manager()
    if version_metric is not None:
        plan = load_plan(plan_path, pm.registry)
        deploys = find_rollouts(plan, pm.registry, version_metric, start=start, end=end, sources=sources)
        first_wave = plan.rollout.waves[0].regions
        found_by = version_metric.metric
        if not deploys:  # a sweep of nothing would pass a policy pull request on no evidence at all
            raise UsageError(f"no version of {version_metric.metric} reached a region of the plan between "
                             f"{iso(start)} and {iso(end)}: nothing to sweep (widen --from/--to?)")
    else:
        deploys, first_wave = every(start, end, float(period or 0)), []
        found_by = f"every {format_duration(float(period or 0))}"
    result = SweepResult(str(plan_path), start, end, found_by)
    for deploy in deploys:
        missing = [r for r in first_wave if r not in deploy.regions]
        if missing:
            row = SweepRow(deploy, "skipped", reason=f"{deploy.label} never reached {', '.join(missing)} "
                                                      "(the first wave): nothing to replay")
        else:
            replayed = replay_plan(plan_path, deployed=deploy.regions or None,
                                   deployed_at=None if deploy.regions else deploy.at,
                                   sources=sources, variables=variables, pm=pm, version=deploy.version)
            row = _row(deploy, replayed)
        result.rows.append(row)
        if on_row is not None:
            on_row(row)
    for row, after in zip(result.rows, result.rows[1:]):
        if row.ended_at is not None and after.deploy.version is not None and after.deploy.at < row.ended_at:
            row.caveats.append(f"{after.deploy.label} reached {next(iter(after.deploy.regions))} at "
                               f"{iso(after.deploy.at)}, before this replay ended ({iso(row.ended_at)}): its last "
                               "readings there may be of that version")
    if not result.replayed:
        raise UsageError(f"no version found ({', '.join(row.deploy.label for row in result.rows)}) reached the plan's "
                         f"first wave ({', '.join(first_wave)}): nothing to sweep")
    return result


def _row(deploy: Deploy, replayed: ReplayResult) -> SweepRow:
    return SweepRow(deploy, replayed.outcome, replayed.reason, replayed.decided_at, replayed.decided_wave,
                    replayed.policy, replayed.check, replayed.region, list(replayed.findings), replayed.ended_at,
                    list(replayed.caveats))


__all__ = ["SweepResult", "SweepRow", "sweep"]
