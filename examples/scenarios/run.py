"""Run a scenario of this library on the simulated fleet, and export what happened.

    python examples/scenarios/run.py r3-sender-restarts
    python examples/scenarios/run.py r3-sender-restarts --seed 7 --openmetrics /tmp/r3.om

Each scenario folder holds ``scenario.yaml`` (the simulated fleet) and ``rollout.yaml``
(the plan that deploys the change to it, with the policy library). A run deploys on a
virtual clock that starts at the scenario's replay time (``REPLAY_AT``: the clock of
the seed report, so the benchmark's times read like the report's) and leaves a state
file and the sim's fleet log in a folder of its own; ``export`` writes the fleet's
history as OpenMetrics for ``promtool tsdb create-blocks-from openmetrics``: the input
of a backtest against a real Prometheus.

Used by ``benchmarks/detection.py`` and the tests; a module beside the scenarios
rather than inside guardrail, because it is about these files.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from guardrail.api import Guardrail
from guardrail.language.loader import load_policy
from guardrail.plugin.manager import get_plugin_manager

HERE = Path(__file__).resolve().parent

REPLAY_AT = {
    "r3-sender-restarts": "2023-01-05T17:10:00Z",
    "dualog-db-cpu": "2024-07-04T09:30:00Z",
    "duocircle-port25": "2021-01-25T10:55:00Z",
    "opensrs-processing-loop": "2021-07-08T15:55:00Z",
    "danaconnect-error-log-storm": "2024-11-05T16:25:00Z",
    "healthy-diurnal": "2024-03-05T00:00:00Z",
    "healthy-daily-restart": "2024-03-05T10:00:00Z",
    "healthy-scrape-gaps": "2024-03-05T10:00:00Z",
    "healthy-short-spikes": "2024-03-05T10:00:00Z",
    "second-wave-regression": "2024-03-05T10:00:00Z",
    "late-canary-failure": "2024-03-05T10:00:00Z",
    "gap-every-series": "2024-03-05T10:00:00Z",
    "healthy-load-peak": "2024-03-05T10:00:00Z",
}
"""When each scenario's plan starts (the deploy of its first wave), in UTC."""


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def names() -> list[str]:
    return sorted(p.parent.name for p in HERE.glob("*/scenario.yaml"))


def healthy(name: str) -> bool:
    return name.startswith("healthy-")


def gap(name: str) -> bool:
    """A healthy change whose evidence goes missing: it must be neither promoted on the
    missing evidence nor rolled back."""
    return name.startswith("gap-")


@dataclass
class Run:
    """One rollout of a scenario's plan, and what the fleet did."""

    name: str
    seed: int | None
    start: float
    outcome: str
    reason: str | None
    rollout_id: str
    state: Path
    fleet: Path
    events: list[dict[str, Any]]
    findings: list[dict[str, Any]] = field(default_factory=list)
    decided_at: float | None = None
    """When the bake decided to fail (the tick of the failing evaluation)."""
    exposure: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)
    """Region -> [(deployed at, rolled back at or None)] on the plan's new version."""
    baselines: dict[tuple[str, str, str], float | None] = field(default_factory=dict)
    version: str = ""
    relapsed_at: float | None = None
    """During verify_recovery: the first failure after the checks had passed cleanly."""

    @property
    def directory(self) -> Path:
        return HERE / self.name


class _Guardrail(Guardrail):
    """``Guardrail`` with two knobs the benchmark turns: the sim's seed, and the policies."""

    def __init__(self, state: Path, pm: Any, seed: int | None, policies: list[Path] | None):
        super().__init__(state, pm=pm)
        self.seed, self.policies = seed, policies

    def load(self, plan_path):
        plan = super().load(plan_path)
        if self.seed is not None:
            for settings in plan.rollout.sources.values():
                if settings.get("plugin") == "sim":
                    settings["seed"] = self.seed
        if self.policies is not None:
            plan.policies = [load_policy(p, self.pm.registry) for p in self.policies]
        return plan


def run(name: str, *, seed: int | None = None, policies: list[Path] | None = None, workdir: Path | None = None,
        start: float | None = None, pm: Any = None) -> Run:
    """Roll the scenario's plan out on the simulated fleet (virtual clock) and collect the result."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix=f"scenario-{name}-"))
    start = epoch(REPLAY_AT[name]) if start is None else start
    api = _Guardrail(workdir / "state.db", pm or get_plugin_manager(), seed, policies)
    try:
        result = api.rollout(HERE / name / "rollout.yaml", clock_start=start)
        store = api.store
        events = store.events(result.rollout_id)
        row = store.rollout(result.rollout_id)
        failed = [e for e in events if e["kind"] in ("state.failed", "state.aborted")]
        found = Run(name, seed, start, result.outcome, result.reason, result.rollout_id, workdir / "state.db",
                    workdir / f"sim-fleet-{result.service}.jsonl", events, version=row["version"])
        if failed:
            found.findings = failed[0].get("findings", [])
            found.decided_at = failed[0]["at"]
        found.exposure = _exposure(found.fleet, row["version"])
        found.baselines = {k: v["value"] for k, v in store.baselines(result.rollout_id).items()}
        found.relapsed_at = _relapse(store.measurements(result.rollout_id, "recovery"))
        return found
    finally:
        api.close()


def _relapse(rows: list[dict[str, Any]]) -> float | None:
    """The first failed evaluation after a tick where every verified check passed cleanly."""
    by_time: dict[float, list[dict[str, Any]]] = {}
    for row in rows:
        by_time.setdefault(row["at"], []).append(row)
    clean = False
    for at in sorted(by_time):
        tick = by_time[at]
        if clean and any(r["status"] == "fail" for r in tick):
            return at
        clean = clean or all(r["status"] == "pass" and not r["pending"] for r in tick)
    return None


def _exposure(fleet: Path, version: str) -> dict[str, list[tuple[float, float | None]]]:
    out: dict[str, list[tuple[float, float | None]]] = {}
    if not fleet.exists():
        return out
    for line in fleet.read_text().splitlines():
        record = json.loads(line)
        region = record.get("region")
        if region is None:
            continue
        spans = out.setdefault(region, [])
        if record["version"] == version:
            spans.append((record["at"], None))
        elif spans and spans[-1][1] is None:
            spans[-1] = (spans[-1][0], record["at"])
    return out


def store_of(result: Run, *, before: float | None = None):
    """The simulated fleet as it was during the run (its fleet log), for queries and
    exports. ``before``: only the deploys and rollbacks before that time, i.e. the
    fleet as if nothing had been rolled back then: what the bad version would have
    gone on doing had it stayed."""
    from guardrail_plugins.sim import open_store

    fleet = result.fleet
    if before is not None:
        kept = [line for line in fleet.read_text().splitlines()
                if json.loads(line).get("action") == "start" or json.loads(line)["at"] < before]
        fleet = fleet.with_name(f"{fleet.stem}-before-{int(before)}.jsonl")
        fleet.write_text("\n".join(kept) + "\n")
    return open_store(result.directory / "scenario.yaml", fleet=fleet, seed=result.seed)


def export(result: Run, out: Path | str, *, end: float | None = None, before: float | None = None) -> int:
    """Write the run's history (from the start of the scenario's history to ``end``,
    default two hours after the start) as OpenMetrics; returns the number of samples.
    ``before``: leave out the deploys and rollbacks from then on (see ``store_of``)."""
    from guardrail_plugins.sim.exposition import write_openmetrics

    store = store_of(result, before=before)
    begin = store.history_start_ms / 1000.0
    return write_openmetrics(store, begin, end if end is not None else result.start + 7200.0, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=names())
    parser.add_argument("--seed", type=int, help="the sim's seed (default: the scenario's)")
    parser.add_argument("--workdir", type=Path, help="where the state file and fleet log go (default: a new temp dir)")
    parser.add_argument("--openmetrics", type=Path, help="also write the fleet's history to this OpenMetrics file")
    parser.add_argument("--hours", type=float, default=2.0, help="how much history after the start to export")
    args = parser.parse_args(argv)
    result = run(args.name, seed=args.seed, workdir=args.workdir)
    where = f" at {iso(result.decided_at)}" if result.decided_at else ""
    sys.stdout.write(f"{args.name}: {result.outcome}{where} (state: {result.state})\n")
    for finding in result.findings:
        sys.stdout.write(f"  {finding['region']}/{finding['policy']}/{finding['check']}: {finding['reason']}\n")
    if args.openmetrics:
        count = export(result, args.openmetrics, end=result.start + args.hours * 3600)
        sys.stdout.write(f"wrote {count} samples to {args.openmetrics}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
