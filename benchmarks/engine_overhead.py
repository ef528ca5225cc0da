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

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "examples" / "quickstart" / "scenario.yaml"

QUERIES = [
    ('sum(increase(service_restarts_total{{region="{{{{region}}}}"}}[{w}m]))', "> 100"),
    ('max(db_cpu_utilization_ratio{{region="{{{{region}}}}"}})', "> 0.99"),
    ('avg(max_over_time(db_cpu_utilization_ratio{{region="{{{{region}}}}"}}[{w}m]))', "> 0.99"),
    ('sum(rate(mail_delivered_total{{region="{{{{region}}}}"}}[{w}m]))', "< 1"),
    ('sum(rate(error_log_writes_total{{region="{{{{region}}}}"}}[{w}m]))', "> 10000"),
    ('max(mail_queue_latency_p95_seconds{{region="{{{{region}}}}"}})', "> 300"),
    ('sum(mail_sends_stalled{{region="{{{{region}}}}"}})', "> 1000"),
    ('avg(probe_success{{region="{{{{region}}}}", module="smtp_banner"}})', "< 0.5"),
    ('max(mail_queue_depth{{region="{{{{region}}}}"}})', "> 100000"),
    ('sum(increase(error_log_writes_total{{region="{{{{region}}}}"}}[{w}m])) / 60', "> 100000"),
]


def write_files(folder: Path) -> Path:
    checks = []
    for i in range(50):
        query, fail_if = QUERIES[i % len(QUERIES)]
        checks.append(f"  - name: check-{i:02d}\n    source: prometheus\n"
                      f"    query: '{query.format(w=5 + i // len(QUERIES))}'\n    fail_if: \"{fail_if}\"\n")
    (folder / "policy.yaml").write_text("apiVersion: guardrail/v1\nkind: Policy\nname: bench\ninterval: 10s\n"
                                        "on_no_data: inconclusive\nchecks:\n" + "".join(checks))
    plan = folder / "rollout.yaml"
    plan.write_text(f"""apiVersion: guardrail/v1
kind: Rollout
service: bench
change: {{version: "2023.01.06", previous: "2022.12.14"}}
clock: virtual
deploy: {{plugin: sim, with: {{scenario: {SCENARIO}}}}}
sources: {{prometheus: {{plugin: sim, scenario: {SCENARIO}}}}}
regions: {{r3: {{}}, r1: {{}}, r2: {{}}}}
waves:
  - {{name: one, regions: [r3], bake: 2h}}
  - {{name: two, regions: [r1], bake: 2h}}
  - {{name: three, regions: [r2], bake: 2h}}
policies: [policy.yaml]
""")
    return plan


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
