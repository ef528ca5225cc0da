"""The store's cost per tick, SQLite against PostgreSQL, and under 10 concurrent rollouts.

1. The engine benchmark's rollout (benchmarks/engine_overhead.py: 3 waves, 50 checks
   every 10 s, a 2-hour bake per wave, sim source, virtual clock) on a SQLite file and
   on a PostgreSQL database, side by side in one run: wall time, the time spent inside
   store calls (every method of the store protocol, timed), and that time per tick (a
   tick: one policy evaluated once in one phase, stored as one row).
2. 10 rollouts of 10 different services at once, each its own process with its own
   connections, against one PostgreSQL: the store time per tick of each, against one
   rollout alone on the same database. The rollouts are the same plan with one 2-hour
   wave (the machine has few cores: 10 processes share them, so part of what this
   measures is CPU contention, not the database).

PostgreSQL: ``--url postgresql://...`` (a database to create tables in), else a
throwaway cluster started like the tests' (tests/support/postgres.py: Debian's
``postgresql``, on loopback, fsync off, as the tests run it; say so when comparing).

Run:  python benchmarks/store_backends.py [--repeat 3] [--concurrent 10]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]

from engine_overhead import write_files  # noqa: E402

PROTOCOL_METHODS = [name for name in dir(__import__("guardrail.state.protocol", fromlist=["Store"]).Store)
                    if not name.startswith("_") and name not in ("MEASUREMENT_COLUMNS", "close")]


@contextlib.contextmanager
def timed_store() -> Iterator[dict]:
    """Time every protocol method of both store classes (outermost calls only)."""
    from guardrail.state.postgres import PostgresStore
    from guardrail.state.sqlite import SQLiteStore

    spent = {"seconds": 0.0, "calls": 0}
    local = threading.local()
    lock = threading.Lock()
    saved = []
    for cls in (SQLiteStore, PostgresStore):
        for name in PROTOCOL_METHODS:
            original = getattr(cls, name, None)
            if not callable(original):
                continue

            def wrapper(self, *args, __original=original, **kwargs):
                if getattr(local, "depth", 0):
                    return __original(self, *args, **kwargs)
                local.depth = 1
                start = time.perf_counter()
                try:
                    return __original(self, *args, **kwargs)
                finally:
                    local.depth = 0
                    with lock:
                        spent["seconds"] += time.perf_counter() - start
                        spent["calls"] += 1

            saved.append((cls, name, cls.__dict__.get(name)))
            setattr(cls, name, wrapper)
    try:
        yield spent
    finally:
        for cls, name, original in saved:
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)


def run_once(plan: Path, state: str, service: str | None = None) -> dict:
    from guardrail.api import Guardrail

    if service:
        text = plan.read_text().replace("service: bench\n", f"service: {service}\n")
        plan = plan.with_name(f"rollout-{service}.yaml")
        plan.write_text(text)
    with timed_store() as spent:
        api = Guardrail(state)
        start = time.perf_counter()
        result = api.rollout(plan)
        wall = time.perf_counter() - start
        store_seconds, calls = spent["seconds"], spent["calls"]
        ticks = len({(m["phase"], m["policy"], m["tick"]) for m in api.store.measurements(result.rollout_id)})
        api.close()
    assert result.outcome == "promoted", result
    return {"wall": wall, "store": store_seconds, "calls": calls, "ticks": ticks}


def _child(plan: str, state: str, service: str, barrier, results) -> None:
    barrier.wait()
    results.put(run_once(Path(plan), state, service))


def one_wave(folder: Path) -> Path:
    plan = write_files(folder)
    text = plan.read_text()
    text = text.replace("  - {name: two, regions: [r1], bake: 2h}\n  - {name: three, regions: [r2], bake: 2h}\n", "")
    path = folder / "one-wave.yaml"
    path.write_text(text)
    return path


def concurrent(plan: Path, url: str, count: int) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(count), context.Queue()
    procs = [context.Process(target=_child, args=(str(plan), url, f"bench-{i}", barrier, results))
             for i in range(count)]
    for proc in procs:
        proc.start()
    out = [results.get(timeout=3600) for _ in procs]
    for proc in procs:
        proc.join()
    return out


def per_tick(run: dict) -> float:
    return run["store"] / run["ticks"] * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--url", help="a PostgreSQL database (default: a throwaway cluster)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        server = None
        if args.url is None:
            from support.postgres import PostgresServer

            server = stack.enter_context(PostgresServer())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        os.environ["GUARDRAIL_STATE_DIR"] = str(tmp)  # the simulated fleet's files, with a database state
        plan = write_files(tmp)
        sqlite, postgres = [], []
        for i in range(args.repeat):  # interleaved, so both see the same machine
            sqlite.append(run_once(plan, str(tmp / f"state{i}.db")))
            url = server.url(server.create_database()) if server else args.url
            postgres.append(run_once(plan, url))
        print(f"3 waves x 2h bake, 50 checks every 10s ({os.cpu_count()} cores); median of {args.repeat}")
        print(f"ticks stored per rollout: {sqlite[0]['ticks']:,}; store calls: sqlite {sqlite[0]['calls']:,}, "
              f"postgres {postgres[0]['calls']:,}")
        print(f"{'':24}{'sqlite':>12}{'postgres':>12}{'ratio':>9}")
        for label, key in (("rollout wall time (s)", "wall"), ("inside the store (s)", "store")):
            a, b = statistics.median(r[key] for r in sqlite), statistics.median(r[key] for r in postgres)
            print(f"{label:24}{a:>12.2f}{b:>12.2f}{b / a:>8.1f}x")
        a, b = statistics.median(map(per_tick, sqlite)), statistics.median(map(per_tick, postgres))
        print(f"{'store per tick (ms)':24}{a:>12.3f}{b:>12.3f}{b / a:>8.1f}x")
        share = [r["store"] / r["wall"] for r in postgres]
        print(f"store share of wall time: sqlite {statistics.median(r['store'] / r['wall'] for r in sqlite):.0%}, "
              f"postgres {statistics.median(share):.0%}")

        if args.concurrent:
            wave = one_wave(tmp)
            url = server.url(server.create_database()) if server else args.url
            alone = run_once(wave, url, "bench-alone")
            together = concurrent(wave, url, args.concurrent)
            ticks = [per_tick(r) for r in together]
            print(f"\n{args.concurrent} rollouts of different services at once on one PostgreSQL "
                  f"(1 wave x 2h, 50 checks every 10s, {alone['ticks']:,} ticks each)")
            print(f"store per tick, one rollout alone:        {per_tick(alone):8.3f} ms   wall {alone['wall']:.1f} s")
            print(f"store per tick, {args.concurrent} at once: median {statistics.median(ticks):8.3f} ms, "
                  f"max {max(ticks):.3f} ms   wall median {statistics.median(r['wall'] for r in together):.1f} s")
            print(f"ratio (median at once / alone): {statistics.median(ticks) / per_tick(alone):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
