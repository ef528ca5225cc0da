"""Engine overhead: how much a rollout costs beyond its source's own work.

A simulated rollout with 3 waves (r3, then r1, then r2), 50 checks evaluated every
10 seconds over a 2-hour bake per wave (regions of earlier waves stay watched), on the
sim source and a virtual clock. Measured side by side in one run:

- the wall time of the whole rollout (library API, no terminal output);
- the time spent inside the sim source's ``measure`` (wrapped with a timer);
- the engine's share: everything else (judging, storing every measurement with its
  evidence in SQLite, scheduling, deploys).

Run:  python benchmarks/engine_overhead.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_plan import SCENARIO, write_plan

REPO = Path(__file__).resolve().parent.parent


def write_files(folder: Path) -> Path:
    return write_plan(folder, checks=50, interval="10s",
                      waves=[("one", "r3", "2h"), ("two", "r1", "2h"), ("three", "r2", "2h")])


def run_once(plan: Path, state: Path) -> dict:
    from guardrail_plugins.sim.source import SimSource

    from guardrail.api import Guardrail

    spent = [0.0, 0]
    original = SimSource.measure

    def timed(self, probe, at):
        start = time.perf_counter()
        try:
            return original(self, probe, at)
        finally:
            spent[0] += time.perf_counter() - start
            spent[1] += 1

    SimSource.measure = timed
    try:
        api = Guardrail(state)
        start = time.perf_counter()
        result = api.rollout(plan)
        wall = time.perf_counter() - start
        rows = api.store.measurement_count(result.rollout_id)
        api.close()
    finally:
        SimSource.measure = original
    assert result.outcome == "promoted", result
    return {"wall": wall, "source": spent[0], "queries": spent[1], "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plan = write_files(folder)
        for i in range(args.repeat):
            runs.append(run_once(plan, folder / f"state{i}.db"))
    wall = statistics.median(r["wall"] for r in runs)
    source = statistics.median(r["source"] for r in runs)
    engine = statistics.median(r["wall"] - r["source"] for r in runs)
    print(f"3 waves x 2h bake, 50 checks every 10s, regions of earlier waves watched ({os.cpu_count()} cores)")
    print(f"evaluations per run:   {runs[0]['queries']:>10,}   (measurements stored: {runs[0]['rows']:,})")
    print(f"rollout wall time:     {wall:>10.2f} s   (median of {len(runs)})")
    print(f"inside the sim source: {source:>10.2f} s")
    print(f"engine (everything else): {engine:>7.2f} s")
    print(f"engine / source:       {engine / source:>10.1%}   share of wall time outside the source: {engine / wall:.1%}")
    print(f"per evaluation:        source {source / runs[0]['queries'] * 1e6:.1f} us, "
          f"engine {engine / runs[0]['queries'] * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
