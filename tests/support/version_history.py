"""History with a version series, written as OpenMetrics and backfilled into a real Prometheus.

A fleet of regions whose ``app_build_info{service, region, version} 1`` series say which
version each region ran, next to a ``mail_errors_total`` counter that a bad version
drives up in the regions running it. Rollouts are given as (version, {region: offset},
bad): the deploy tests read the version series back, and the sweep replays a plan at
every rollout found (``tests/test_deploys.py``, ``tests/test_sweep.py``: ``write_plan``); the
``version_prometheus`` fixture (``support.version_prometheus``) serves them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from support.debian import ensure

HEALTHY_ERRORS = 2.0
"""Errors per second in every region on a healthy version."""
BAD_ERRORS = 40.0
"""Errors per second in a region running a bad version."""


@dataclass
class Rollout:
    version: str
    regions: dict[str, float]
    """Region -> seconds from the history's start when it switched to the version."""
    bad: bool = False
    reverted_after: float | None = None
    """Seconds after a region got the version when it went back to the one before (a rollback)."""


@dataclass
class History:
    service: str
    start: float
    end: float
    step: float
    regions: list[str]
    first_version: str
    rollouts: list[Rollout] = field(default_factory=list)
    region_labels: dict[str, str] = field(default_factory=dict)
    """Region -> the value its series carry in the ``region`` label (default: its name)."""

    def version_at(self, region: str, t: float) -> tuple[str, bool]:
        current, bad = self.first_version, False
        for rollout in self.rollouts:
            at = rollout.regions.get(region)
            if at is not None and self.start + at <= t:
                reverted = rollout.reverted_after is not None and self.start + at + rollout.reverted_after <= t
                if not reverted:
                    current, bad = rollout.version, rollout.bad
        return current, bad

    def write(self, out: Path) -> int:
        """OpenMetrics of every sample; returns their number."""
        count = 0
        errors = {r: 0.0 for r in self.regions}
        info: dict[str, list[str]] = {}  # series -> its samples: OpenMetrics keeps a series' samples together
        counter: dict[str, list[str]] = {}
        t = self.start
        while t <= self.end + 1e-9:
            for region in self.regions:
                version, bad = self.version_at(region, t)
                label = self.region_labels.get(region, region)
                key = f'app_build_info{{region="{label}",service="{self.service}",version="{version}"}}'
                info.setdefault(key, []).append(f"{key} 1 {t:.0f}")
                key = f'mail_errors_total{{region="{label}",service="{self.service}"}}'
                counter.setdefault(key, []).append(f"{key} {errors[region]!r} {t:.0f}")
                errors[region] += (BAD_ERRORS if bad else HEALTHY_ERRORS) * self.step
                count += 2
            t += self.step
        with open(out, "w", encoding="utf-8") as fh:
            fh.write("# TYPE app_build_info gauge\n")
            for lines in info.values():
                fh.write("\n".join(lines) + "\n")
            fh.write("# TYPE mail_errors counter\n")
            for lines in counter.values():
                fh.write("\n".join(lines) + "\n")
            fh.write("# EOF\n")
        return count

    def backfill(self, tsdb: Path) -> int:
        promtool = ensure("promtool", "prometheus")
        tsdb.mkdir(parents=True, exist_ok=True)
        export = tsdb.parent / f"{self.service}.om"
        written = self.write(export)
        done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(export), str(tsdb)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr + done.stdout
        export.unlink()
        return written


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


HOUR = 3600.0
STEP = 60.0
"""Every history here is written (and scraped, as Prometheus's global interval says) every minute."""

DAY = History("mail-sender", _epoch("2024-07-01T00:00:00"), _epoch("2024-07-02T00:00:00"), STEP, ["r3", "r1", "r2"],
              "2024.06.01", [Rollout("2024.07.01", {"r3": 2 * HOUR, "r1": 3 * HOUR + 17 * 60}),
                             Rollout("2024.07.02", {"r3": 12 * HOUR, "r1": 12.5 * HOUR, "r2": 13 * HOUR})])
"""A day: 2024.07.01 reached r3 and r1 at different times and never r2, which got 2024.07.02 later."""

CLOUD = History("mail-edge", DAY.start, DAY.end, STEP, ["r3", "r1", "r2"], "2024.06.01",
                [Rollout("2024.07.01", {"r1": 4 * HOUR, "r2": 5 * HOUR})],
                region_labels={"r3": "us-east-1", "r1": "eu-west-1", "r2": "ap-south-1"})
"""The same fleet whose series name the cloud region (``eu-west-1``), not the plan's (``r1``)."""

BAD = (7, 16)
WEEK = History("mail-queue", _epoch("2024-07-08T00:00:00"), _epoch("2024-07-15T00:00:00"), STEP, ["r3", "r1", "r2"],
               "w00", [Rollout(f"w{k + 1:02d}", {"r3": (2 + 7.5 * k) * HOUR, "r1": (2.5 + 7.5 * k) * HOUR,
                                                 "r2": (2.5 + 7.5 * k) * HOUR}, bad=k in BAD,
                                       reverted_after=2 * HOUR if k in BAD else None) for k in range(22)])
"""A week of 22 rollouts, every 7.5 hours: canary r3, r1 and r2 30 minutes later; the
8th (w08) and the 17th (w17) raise the error rate twentyfold wherever they run, and were
rolled back two hours later (the regions ran the version before them again)."""


POLICY = {  # fails where the errors of a bad version run: 40/s against 2/s
    "apiVersion": "guardrail/v1", "kind": "Policy", "name": "errors", "interval": "1m",
    "checks": [{"name": "error-rate", "source": "prometheus", "fail_if": "> 10", "for": "2m",
                "query": 'sum(rate(mail_errors_total{service="{{service}}", region="{{region}}"}[5m]))'}],
}


def write_plan(folder: Path, url: str | None, *, service: str = "mail-sender", regions: dict | None = None) -> Path:
    """A three-region plan (canary r3, then r1 and r2) reading ``url``."""
    (folder / "errors.yaml").write_text(yaml.safe_dump(POLICY))
    plan = {
        "apiVersion": "guardrail/v1", "kind": "Rollout", "service": service,
        "change": {"version": "next", "previous": "current"}, "deploy": {"plugin": "noop"},
        "sources": {"prometheus": {"plugin": "prometheus", "url": url}} if url else {},
        "regions": regions or {"r3": {}, "r1": {}, "r2": {}},
        "waves": [{"name": "canary", "regions": ["r3"], "bake": "30m"},
                  {"name": "main", "regions": ["r1", "r2"], "bake": "30m"}],
        "policies": ["errors.yaml"],
    }
    path = folder / "rollout.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path
