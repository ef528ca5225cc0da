"""How long does one evaluation tick of 300 checks x 3 regions take against a real
Prometheus, next to the floor? (target: tick / floor <= 1.5)

    python benchmarks/prometheus_tick.py [--checks 300] [--concurrency 16] [--repeat 7]

Starts a real Prometheus (Debian package ``prometheus``, installed when missing) over
history backfilled from tests/data/prometheus/backfill.yaml, writes a plan whose
policy has ``--checks`` distinct PromQL checks (rates, increases, ``*_over_time``,
quantiles, offsets over windows of 1 to 50 minutes) for the three regions, and times,
interleaved in the same run:

- tick: ``Evaluator.measure`` of every check in every region at one instant, on the
  bounded pool (``--concurrency`` threads), as a bake's tick does: rendering, the
  prometheus source (prometheus-api-client over a pooled requests session), parsing;
- floor: the same rendered queries with the same parameters, fired with plain httpx
  from the same number of threads over one pooled ``httpx.Client``, answers decoded;
- sequential: the tick with a pool of one, i.e. the sum of all the queries;
- tick without freshness: the tick with the source's ``freshness: false``, i.e. without
  the companion query that reads the inputs' sample times (one more request for each
  reading that returned data), so the cost of freshness is measured side by side.

Each figure is the median of ``--repeat`` runs, after one warm-up of each. Exit status
0 when tick / floor meets the target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the real-Prometheus helper the tests use

TARGET = 1.5
TEMPLATES = [
    'sum(rate(mail_delivered_total{{region="{{{{region}}}}"}}[{w}m]))',
    'sum(increase(error_log_writes_total{{region="{{{{region}}}}"}}[{w}m]))',
    'max(max_over_time(db_cpu_utilization_ratio{{region="{{{{region}}}}"}}[{w}m]))',
    'avg(avg_over_time(mail_queue_depth{{region="{{{{region}}}}"}}[{w}m]))',
    'max(quantile_over_time(0.95, mail_queue_depth{{region="{{{{region}}}}"}}[{w}m]))',
    'max(db_cpu_utilization_ratio{{region="{{{{region}}}}"}} offset {w}m)',
]


def write_plan(base: Path, url: str, checks: int, freshness: bool = True) -> Path:
    policy = {"apiVersion": "guardrail/v1", "kind": "Policy", "name": "bench", "interval": "30s",
              "checks": [{"name": f"c{i}", "source": "prometheus",
                          "query": TEMPLATES[i % len(TEMPLATES)].format(w=1 + i // len(TEMPLATES)),
                          "fail_if": "> 1e12", "reduce": "max"} for i in range(checks)]}
    plan = {"apiVersion": "guardrail/v1", "kind": "Rollout", "service": "bench",
            "change": {"version": "2", "previous": "1"}, "deploy": {"plugin": "noop"},
            "sources": {"prometheus": {"url": url, "timeout": "30s", "freshness": freshness}},
            "regions": {"r3": {}, "r1": {}, "r2": {}}, "waves": [{"name": "all", "regions": ["r3", "r1", "r2"],
                                                                    "bake": "10m"}],
            "policies": ["policy.yaml"]}
    name = "plan.yaml" if freshness else "plan-no-freshness.yaml"
    (base / "policy.yaml").write_text(json.dumps(policy))
    (base / name).write_text(json.dumps(plan))
    return base / name


def timed(run) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds in all its threads) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    import httpx

    from guardrail.clock import SystemClock
    from guardrail.rollout.evaluation import Evaluator
    from guardrail.plugin.interfaces import PluginContext
    from guardrail.language.loader import load_plan
    from guardrail.plugin.manager import get_plugin_manager
    from guardrail_plugins.sim import open_store
    from guardrail_plugins.prometheus_freshness import companion_query, inputs
    from support.prometheus import BACKFILL_AFTER_START, BACKFILL_SCENARIO, PrometheusServer, backfill

    with tempfile.TemporaryDirectory(prefix="guardrail-bench-") as tmp:
        base = Path(tmp)
        store = open_store(BACKFILL_SCENARIO)
        start = store.scenario.start_epoch
        samples = backfill(store, start - store.scenario.history, start + BACKFILL_AFTER_START, base / "tsdb")
        with PrometheusServer(base / "prometheus", tsdb=base / "tsdb", global_interval="15s") as server:
            registry = get_plugin_manager().registry
            plan = load_plan(write_plan(base, server.url, args.checks), registry)
            unfresh = load_plan(write_plan(base, server.url, args.checks, freshness=False), registry)
            context = PluginContext(clock=SystemClock(), state_dir=base, base_dir=base)
            at = start + 100 * 60
            pooled = Evaluator(plan, registry, context, concurrency=args.concurrency)
            single = Evaluator(plan, registry, context, concurrency=1)
            without = Evaluator(unfresh, registry, context, concurrency=args.concurrency)
            items = pooled.items(["r3", "r1", "r2"])
            queries = [pooled.query_text(item) for item in items]
            companions = sum(1 for q in queries if companion_query(inputs(q) or []))

            def tick(evaluator=pooled) -> None:
                readings = evaluator.measure(items, at)
                assert all(r.error is None and r.series for r in readings.values()), "a query failed"

            client = httpx.Client(base_url=server.url, timeout=30,
                                  limits=httpx.Limits(max_connections=args.concurrency,
                                                      max_keepalive_connections=args.concurrency))
            plain_pool = ThreadPoolExecutor(args.concurrency)

            def one(query: str) -> None:
                answer = client.get("/api/v1/query", params={"query": query, "time": f"{at:.3f}", "timeout": "30.000"})
                assert answer.json()["data"]["result"], query

            def floor() -> None:
                list(plain_pool.map(one, queries))

            tick(), floor(), tick(single), tick(without)  # warm all before timing any
            ticks, floors, plain_ticks = [], [], []
            for _ in range(args.repeat):  # interleaved, so drift on the machine hits all alike
                ticks.append(timed(tick))
                floors.append(timed(floor))
                plain_ticks.append(timed(lambda: tick(without)))
            sequential = statistics.median(timed(lambda: tick(single))[0] for _ in range(max(1, args.repeat // 3)))
            separate = set().union(*(getattr(src, "_separate", set()) for src in pooled._sources.values()))
            apart = sum(1 for q in queries if q in separate)
            pooled.close(), single.close(), without.close(), client.close(), plain_pool.shutdown()
            version = subprocess.run([server_binary(), "--version"], capture_output=True, text=True).stdout.split("\n")[0]

    tick_s, floor_s = statistics.median(t for t, _ in ticks), statistics.median(t for t, _ in floors)
    tick_cpu, floor_cpu = statistics.median(c for _, c in ticks), statistics.median(c for _, c in floors)
    ratio = tick_s / floor_s
    plain_s = statistics.median(t for t, _ in plain_ticks)
    print(f"date: {datetime.date.today()}  cores (nproc): {os.cpu_count()}  {version}")
    print(f"backfilled samples: {samples}  checks: {args.checks} x 3 regions = {len(queries)} queries"
          f"  concurrency: {args.concurrency}  repeat: {args.repeat} (medians)")
    print(f"{'tick (Evaluator.measure, pooled)':40} {tick_s * 1000:8.1f} ms   {tick_s / len(queries) * 1e6:6.0f} us/query")
    print(f"{'floor (plain httpx, same concurrency)':40} {floor_s * 1000:8.1f} ms   {floor_s / len(queries) * 1e6:6.0f} us/query")
    print(f"{'tick without freshness (freshness: false)':40} {plain_s * 1000:8.1f} ms   {plain_s / len(queries) * 1e6:6.0f} us/query")
    print(f"{'sequential (Evaluator, pool of 1)':40} {sequential * 1000:8.1f} ms   {sequential / len(queries) * 1e6:6.0f} us/query")
    print(f"client CPU per query (all threads): tick {tick_cpu / len(queries) * 1e6:.0f} us,"
          f" floor {floor_cpu / len(queries) * 1e6:.0f} us")
    print(f"requests per tick: {len(queries) + apart} with freshness ({companions} of {len(queries)} queries carry"
          f" a companion, joined with `or`; {apart} asked apart), {len(queries)} without; the floor sends"
          f" {len(queries)}")
    print(f"tick / floor: {ratio:.2f} (target <= {TARGET})  without freshness: {plain_s / floor_s:.2f}"
          f"  freshness costs {tick_s / plain_s:.2f}x  sequential / tick: {sequential / tick_s:.1f}x")
    print(f"all ticks (ms): {' '.join(f'{t * 1000:.0f}' for t, _ in ticks)}")
    print(f"all floors (ms): {' '.join(f'{t * 1000:.0f}' for t, _ in floors)}")
    print("PASS" if ratio <= TARGET else "FAIL")
    return 0 if ratio <= TARGET else 1


def server_binary() -> str:
    from support.debian import ensure

    return ensure("prometheus", "prometheus")


if __name__ == "__main__":
    sys.exit(main())
