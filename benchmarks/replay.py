"""Whole-plan replay: how long does ``guardrail backtest PLAN.yaml`` take against a real
Prometheus, next to the same plan rolled out live on the simulated fleet?

A plan of 3 waves (r3 30 minutes, r1 30 minutes, r2 1 hour: 2 hours of bake), one
policy of 20 checks evaluated every 30 seconds (regions of earlier waves stay watched),
over the quickstart's scenario with loose thresholds (every wave passes). Measured in
one run, interleaved:

- live: the plan rolled out on the sim (``Guardrail.rollout``, virtual clock, the sim
  source answering in-process);
- replay: the same plan replayed by ``replay_plan`` against a real Prometheus
  backfilled (``promtool``) with the live run's history, with the deploy times the
  fleet log shows: every query a PromQL request over HTTP.

Both must reach the same outcome at the same time. Prints the median wall time of each
(``--repeat`` runs after one warm-up of each) and their ratio; the backfill and the
server's start are set-up, timed apart.

Run:  python benchmarks/replay.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_plan import SCENARIO, write_plan

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the real-Prometheus helper the tests use
START = 1720083600.0  # 2024-07-04T09:00:00Z
CHECKS = 20


def write_files(folder: Path) -> Path:
    return write_plan(folder, checks=CHECKS, interval="30s",
                      waves=[("canary", "r3", "30m"), ("second", "r1", "30m"), ("last", "r2", "1h")])


def live(plan: Path, state: Path) -> tuple[float, str, float, Path, int]:
    """(wall seconds, outcome, time of the promotion, the sim's fleet log, evaluations stored)."""
    from guardrail.api import Guardrail

    api = Guardrail(state)
    try:
        began = time.perf_counter()
        result = api.rollout(plan, clock_start=START)
        wall = time.perf_counter() - began
        [promoted] = api.store.events(result.rollout_id, "state.promoted") or [{"at": None}]
        rows = api.store.measurement_count(result.rollout_id)
    finally:
        api.close()
    return wall, result.outcome, promoted["at"], state.parent / "sim-fleet-bench.jsonl", rows


def deploy_times(fleet: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in fleet.read_text().splitlines():
        record = json.loads(line)
        if record.get("action") == "deploy":
            out.setdefault(record["region"], record["at"])
    return out


def replay(plan: Path, url: str, deployed: dict[str, float]) -> tuple[float, str, float]:
    from guardrail.tools.replay import replay_plan

    began = time.perf_counter()
    result = replay_plan(plan, deployed=deployed, sources={"prometheus": {"plugin": "prometheus", "url": url}})
    return time.perf_counter() - began, result.outcome, result.decided_at


def main() -> int:
    from guardrail_plugins.sim import open_store
    from support.prometheus import PrometheusServer, backfill

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp:
        folder = Path(tmp)
        plan = write_files(folder)
        (folder / "first").mkdir()
        _, outcome, ended, fleet, evaluations = live(plan, folder / "first" / "state.db")
        assert outcome == "promoted", outcome
        deployed = deploy_times(fleet)
        began = time.perf_counter()
        store = open_store(SCENARIO, fleet=fleet)
        samples = backfill(store, store.history_start_ms / 1000.0, ended + 900, folder / "tsdb")
        loaded = time.perf_counter() - began
        began = time.perf_counter()
        with PrometheusServer(folder / "prometheus", tsdb=folder / "tsdb", global_interval="15s") as server:
            started = time.perf_counter() - began
            lives, replays = [], []
            for i in range(args.repeat + 1):  # the first of each is a warm-up
                (folder / f"live{i}").mkdir()
                wall, outcome, at, _, _ = live(plan, folder / f"live{i}" / "state.db")
                assert (outcome, at) == ("promoted", ended), (outcome, at)
                lives.append(wall)
                wall, outcome, at = replay(plan, server.url, deployed)
                assert (outcome, at) == ("promoted", ended), (outcome, at - ended)
                replays.append(wall)
    print(f"3 waves (30m, 30m, 1h), {CHECKS} checks every 30s, earlier waves watched: {evaluations:,} "
          f"evaluations per run ({os.cpu_count()} cores)")
    print(f"set-up: backfill {samples:,} samples {loaded:.1f} s, Prometheus start {started:.1f} s")
    print(f"live on the sim:            {statistics.median(lives[1:]):>7.2f} s   (median of {args.repeat})")
    print(f"replay against Prometheus:  {statistics.median(replays[1:]):>7.2f} s   (median of {args.repeat})")
    print(f"replay / live:              {statistics.median(replays[1:]) / statistics.median(lives[1:]):>7.2f}")
    print("both promoted at the same time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
