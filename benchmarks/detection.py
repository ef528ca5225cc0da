"""Detection benchmark: does the policy library catch the seed incidents (and the
failure classes beyond them), how fast, with how much exposure, how often does it cry
wolf, and does it hold when evidence goes missing?

    python benchmarks/detection.py                         # 10 seeds per failure, 100 per healthy scenario
    python benchmarks/detection.py --failure-seeds 3 --healthy-runs 10 --jobs 2

Every scenario of ``examples/scenarios/`` is rolled out on the simulated fleet (virtual
clock, the engine's own code, ``examples/scenarios/run.py``), once per seed of the
sim's noise and jitter, with the library's policies and again with
``examples/scenarios/naive-policy.yaml`` (static thresholds, no ``for:``, no baseline,
no data ignored), to show what guardrail's semantics buy.

For a failure: the *latency past hold* runs from the moment the deciding check's
breach condition first held in the data for its own ``for:`` (found by evaluating the
check on a 5-second grid with the run's own baseline: the judge with no hold, on data
finer than the 30-second ticks) to the rollback decision; the *end-to-end* time from
the fault's onset (the first effect of the bad version) to the last region rolled
back; the *blast radius* the regions that ran the bad version, and for how many
region-minutes. For a healthy scenario: a false positive is any rollout not promoted.
The last line is the summary for the library's policies.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "examples" / "scenarios"
NAIVE = SCENARIOS / "naive-policy.yaml"
GRID = 5.0
"""Seconds between two evaluations of the breach oracle (the ticks are 30s apart)."""

REPORTED = {
    "r3-sender-restarts": "onset 17:15, detected 22:00 (+4h45m), rolled back 22:40-22:50 (+5h35m); 3 regions, >=995 region-min",
    "dualog-db-cpu": "onset 09:45, alerted 10:00 (+15m), traffic resumed 12:38 (+2h53m); the whole cluster",
    "duocircle-port25": "onset 03:00 PST; detection and resolution times not given; 20% of servers",
    "opensrs-processing-loop": "onset 11:57 ET, reverted 12:23 (+26m), relapse 14:04 (revert +1h41m), restored next day",
    "danaconnect-error-log-storm": "onset 12:30 GMT-4, injection paused 12:50 (+20m), resolved 16:00 (+3h30m); all channels",
}
"""The seed reports' own figures, side by side with the benchmark's."""

NEW_FAILURES = {
    "second-wave-regression": "a regression only a second-wave region (r1) shows",
    "late-canary-failure": "a failure in the canary 45 minutes after its deploy, 15 after its bake ended",
}
"""Failure classes beyond the seed reports: caught in the same table as the seeds'."""


def _library():
    spec = importlib.util.spec_from_file_location("scenario_library", SCENARIOS / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("scenario_library", module)
    spec.loader.exec_module(module)
    return module


_PM = None


def _pm():
    global _PM
    if _PM is None:
        from guardrail.plugin.manager import get_plugin_manager

        _PM = get_plugin_manager()
    return _PM


def start_of(lib, name: str, seed: int) -> float:
    """When the run deploys: the replay time, a few seconds later for each seed (ticks
    fall anywhere between two 15-second scrapes, as they do in life); the diurnal
    scenario also moves through the day by seed."""
    start = lib.epoch(lib.REPLAY_AT[name]) + (seed * 7) % 30
    return start + (seed % 24) * 3600.0 if name == "healthy-diurnal" else start


def task(name: str, seed: int, policy: str) -> dict[str, Any]:
    """One rollout, measured (runs in a worker process)."""
    lib = _library()
    workdir = Path(tempfile.mkdtemp(prefix=f"detection-{name}-"))
    began = time.perf_counter()
    try:
        result = lib.run(name, seed=seed, policies=[NAIVE] if policy == "naive" else None, workdir=workdir,
                         start=start_of(lib, name, seed), pm=_pm())
        out: dict[str, Any] = {"name": name, "seed": seed, "policy": policy, "outcome": result.outcome,
                               "reason": result.reason, "start": result.start, "decided_at": result.decided_at,
                               "findings": [f"{f['region']} {f['check']}" for f in result.findings]}
        if not lib.healthy(name) and not lib.gap(name):
            out.update(_failure_measures(lib, result))
        if lib.gap(name):
            out["covered"] = _covered(result)
        return out
    finally:
        out_wall = time.perf_counter() - began
        shutil.rmtree(workdir, ignore_errors=True)
        if "out" in locals():
            out["wall"] = out_wall


def _failure_measures(lib, result) -> dict[str, Any]:
    from guardrail_plugins.sim import load_scenario

    scenario = load_scenario(result.directory / "scenario.yaml")
    effects = scenario.effects_of(result.version)

    def first_effect(region: str) -> float | None:  # an effect narrowed to other regions is no onset here
        return min((e.after for e in effects if e.regions is None or region in e.regions), default=None)

    end = result.decided_at if result.decided_at is not None else max(e["at"] for e in result.events)
    onsets = {r: spans[0][0] + first_effect(r) for r, spans in result.exposure.items()
              if spans and first_effect(r) is not None}
    minutes = sum(((until if until is not None else end) - since) / 60.0
                  for spans in result.exposure.values() for since, until in spans)
    rolled_back = [until for spans in result.exposure.values() for _, until in spans if until is not None]
    onset = min(onsets.values()) if onsets else None
    out = {"onset": onset, "regions": sorted(result.exposure), "region_minutes": minutes,
           "rolled_back_at": max(rolled_back) if rolled_back and len(rolled_back) == len(result.exposure) else None}
    if result.decided_at is not None and result.findings:
        ready = [_held_since(lib, result, f) for f in result.findings]
        known = [r for r in ready if r is not None]
        out["ready"] = min(known) if known else None
        out["latency"] = result.decided_at - out["ready"] if known else None
    if result.relapsed_at is not None and out["rolled_back_at"] is not None:
        out["relapse_after_rollback"] = result.relapsed_at - out["rolled_back_at"]
    return out


def _covered(result) -> bool:
    """Whether every bake the run passed was covered by fresh evidence (from the store)."""
    from guardrail.state.sqlite import SQLiteStore

    store = SQLiteStore(result.state)
    try:
        started = store.events(result.rollout_id, "rollout.started")[0]["waves"]
        bakes = {f"bake:{w['name']}": w["bake"] for w in started}
        passed = {s["key"] for s in store.steps(result.rollout_id, "bake:") if s["status"] == "done"}
        rows = [r for r in store.coverage(result.rollout_id) if r["phase"] in passed and r["applies"]]
        return all(r["covered"] >= bakes[r["phase"]] - 1e-6 for r in rows)
    finally:
        store.close()


def _held_since(lib, result, finding: dict[str, Any]) -> float | None:
    """The first moment the finding's breach condition had held for its ``for:`` in the
    data: the judge (no hold) every ``GRID`` seconds from the region's deploy."""
    from guardrail.plugin.interfaces import Reading, Series
    from guardrail.judging.judge import CheckState, judge
    from guardrail.language.loader import load_policy
    from guardrail.language.types import render_value
    from guardrail_plugins.prometheus import escape_promql
    from guardrail_plugins.sim import evaluate

    paths = [NAIVE] if finding["policy"] == "naive" else [
        (result.directory / p).resolve() for p in _plan_policies(result.directory / "rollout.yaml")]
    policy = next(p.policy for p in (load_policy(x, _pm().registry) for x in paths) if p.policy.name == finding["policy"])
    check = next(c for c in policy.checks if c.name == finding["check"])
    region = finding["region"]
    query = render_value(check.params, {"region": region}, escape_promql)["query"]
    reference = result.baselines.get((region, policy.name, check.name))
    store = lib.store_of(result, before=result.decided_at)  # the data the engine saw
    instant = check.model_copy(update={"for_": 0.0})
    since = result.exposure[region][0][0]
    breach_from = None
    t = since
    while t <= result.decided_at + 1e-9:
        value = evaluate(query, store, t)
        series = (() if isinstance(value, float) and math.isnan(value) else (Series({}, value),)) \
            if isinstance(value, float) else tuple(Series(labels, v) for labels, v in value)
        verdict, _ = judge(instant, Reading(series=series), at=t, state=CheckState(), on_no_data=policy.on_no_data,
                           reference=reference, needs_reference=check.compare == "baseline")
        if verdict.status == "fail":
            breach_from = t if breach_from is None else breach_from
            if t - breach_from + 1e-9 >= check.for_:
                return breach_from + check.for_
        else:
            breach_from = None
        t += GRID
    return None


def _plan_policies(plan: Path) -> list[str]:
    import yaml

    return yaml.safe_load(plan.read_text())["policies"]


# --- the report ----------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")
    return sign + text


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def failure_rows(runs: list[dict[str, Any]], policy: str) -> tuple[list[list[str]], list[float], int, int]:
    rows, latencies, detected, total = [], [], 0, 0
    for name in [*REPORTED, *NEW_FAILURES]:
        mine = [r for r in runs if r["name"] == name and r["policy"] == policy]
        if not mine:
            continue
        caught = [r for r in mine if r["decided_at"] is not None and r["onset"] is not None
                  and r["decided_at"] >= r["onset"]]
        total += len(mine)
        detected += len(caught)
        lat = [r["latency"] for r in caught if r.get("latency") is not None]
        latencies += lat
        by = Counter(f for r in caught for f in r["findings"][:1]).most_common(1)
        early = sum(1 for r in mine if r["decided_at"] is not None and r["onset"] is not None
                    and r["decided_at"] < r["onset"])
        relapses = [r["relapse_after_rollback"] for r in mine if r.get("relapse_after_rollback") is not None]
        note = f"; relapse seen {_duration(_median(relapses))} after rollback" if relapses else ""
        rows.append([name, f"{len(caught)}/{len(mine)}" + (f" ({early} before onset)" if early else ""),
                     by[0][0] if by else "-",
                     _duration(_median([r["ready"] - r["onset"] for r in caught if r.get("ready") is not None])),
                     f"{_duration(_median(lat))} / {_duration(max(lat) if lat else None)}",
                     _duration(_median([r["rolled_back_at"] - r["onset"] for r in caught if r["rolled_back_at"]])),
                     str(max(len(r["regions"]) for r in mine)),
                     f"{_median([r['region_minutes'] for r in mine]):.1f}",
                     mine[0]["outcome"] + note])
    return rows, latencies, detected, total


def healthy_rows(runs: list[dict[str, Any]]) -> tuple[list[list[str]], dict[str, tuple[int, int]]]:
    rows, totals = [], {"guardrail": [0, 0], "naive": [0, 0]}
    for name in sorted({r["name"] for r in runs if r["name"].startswith("healthy-")}):
        row = [name]
        for policy in ("guardrail", "naive"):
            mine = [r for r in runs if r["name"] == name and r["policy"] == policy]
            bad = [r for r in mine if r["outcome"] != "promoted"]
            totals[policy][0] += len(bad)
            totals[policy][1] += len(mine)
            kinds = Counter(r["outcome"] for r in bad)
            culprit = Counter(f.split()[1] for r in bad for f in r["findings"][:1]).most_common(1)
            detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
            row += [f"{len(bad)}/{len(mine)} ({100.0 * len(bad) / max(len(mine), 1):.1f}%)",
                    (detail + (f"; mostly {culprit[0][0]}" if culprit else "")) or "-"]
        rows.append(row)
    return rows, {k: (v[0], v[1]) for k, v in totals.items()}


def gap_rows(runs: list[dict[str, Any]]) -> tuple[list[list[str]], tuple[int, int, int, int]]:
    rows, wrong = [], {"guardrail": [0, 0], "naive": [0, 0]}
    for name in sorted({r["name"] for r in runs if r["name"].startswith("gap-")}):
        row = [name]
        for policy in ("guardrail", "naive"):
            mine = [r for r in runs if r["name"] == name and r["policy"] == policy]
            bad = [r for r in mine if r["outcome"] in ("rolled_back", "rollback_failed")
                   or (r["outcome"] == "promoted" and not r.get("covered"))]
            wrong[policy][0] += len(bad)
            wrong[policy][1] += len(mine)
            kinds = Counter(r["outcome"] + ("" if r["outcome"] != "promoted" else
                                            " (covered)" if r.get("covered") else " (NOT covered)") for r in mine)
            row += [f"{len(bad)}/{len(mine)} wrong", ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))]
        rows.append(row)
    return rows, (*wrong["guardrail"], *wrong["naive"])


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def report(runs: list[dict[str, Any]], *, seeds: int, healthy_runs: int, wall: float, jobs: int) -> str:
    out = [f"Detection benchmark, {date.today().isoformat()}, {os.cpu_count()} cores ({jobs} jobs), "
           f"{len(runs)} simulated rollouts in {wall:.0f}s; failures x{seeds} seeds, healthy x{healthy_runs} seeds",
           ""]
    head = ["scenario", "detected", "caught by (first)", "onset -> breach+hold", "latency past hold (median / max)",
            "onset -> rollback", "regions", "region-min", "outcome"]
    summary = None
    for policy in ("guardrail", "naive"):
        rows, latencies, detected, total = failure_rows(runs, policy)
        title = "policy library (policies/)" if policy == "guardrail" else "naive policy (examples/scenarios/naive-policy.yaml)"
        out += [f"Failures, {title}:", "", table(head, rows), ""]
        if policy == "guardrail":
            summary = (detected, total, _median(latencies), max(latencies, default=None))
    out += ["The seed reports' own figures:", "", table(["scenario", "reported"], [[k, v] for k, v in REPORTED.items()]), ""]
    out += ["The new failure classes:", "", table(["scenario", "what"], [[k, v] for k, v in NEW_FAILURES.items()]), ""]
    rows, totals = healthy_rows(runs)
    out += ["Healthy scenarios, false positives (any rollout not promoted):", "",
            table(["scenario", "policy library", "how", "naive policy", "how"], rows), ""]
    gap_table, wrong = gap_rows(runs)
    out += ["Data gaps: a healthy change whose evidence goes missing (wrong: rolled back, or promoted with a bake"
            " not covered by fresh evidence):", "",
            table(["scenario", "policy library", "outcomes", "naive policy", "outcomes"], gap_table), ""]
    detected, total, median, worst = summary
    fp, runs_healthy = totals["guardrail"]
    nfp, nruns = totals["naive"]
    out.append(f"naive policy: false positives {nfp}/{nruns}")
    out.append(f"every detection within one evaluation interval (30s) past its hold: "
               f"{'yes' if worst is not None and worst <= 30.0 + 1e-6 else 'NO'} (worst {_duration(worst)})")
    out.append(f"data gaps: wrong decisions {wrong[0]}/{wrong[1]} (naive policy {wrong[2]}/{wrong[3]})")
    out.append(f"detected {detected}/{total} failures, false positives {fp}/{runs_healthy}, "
               f"median latency past hold {median if median is not None else float('nan'):.0f}s")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failure-seeds", type=int, default=10, help="seeds per failure scenario (default 10)")
    parser.add_argument("--healthy-runs", type=int, default=100, help="seeds per healthy scenario (default 100)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    parser.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    args = parser.parse_args(argv)
    lib = _library()
    tasks = []
    for name in lib.names():
        if args.only and name not in args.only:
            continue
        count = args.healthy_runs if lib.healthy(name) else args.failure_seeds  # gap classes: as failures
        tasks += [(name, seed, policy) for seed in range(1, count + 1) for policy in ("guardrail", "naive")]
    began = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(task, *zip(*tasks), chunksize=4))
    else:
        runs = [task(*t) for t in tasks]
    print(report(runs, seeds=args.failure_seeds, healthy_runs=args.healthy_runs,
                 wall=time.perf_counter() - began, jobs=args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
