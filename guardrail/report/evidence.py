"""Per region: the verdict a person reads in ``status``, JSON and reports, and the bake
time each check covered with fresh evidence (``guardrail.judging.coverage``).

A region's verdict is the verdict of the rollout *now*, not the worst tick it ever had:

- ``not_deployed``, ``deploy_not_started``, ``deploy_failed``: its deploy was never
  asked for, could not start (its program does not exist: nothing changed there), or
  failed;
- ``fail``: a check failed there (it is among the failing checks);
- ``aborted``: a person aborted the rollout and the region was rolled back;
- ``rolled_back``: rolled back because of a failure elsewhere;
- ``paused``: the rollout is halted by a person's pause;
- ``pass``: its wave's bake passed (covered and clean; it stays watched while later
  waves bake, and a failure there turns it into ``fail``);
- ``pending``: its wave still bakes (the coverage entries say how much is covered);
- ``inconclusive``: the rollout halted while its wave baked, for missing evidence.
"""

from __future__ import annotations

from typing import Any

from guardrail.judging.coverage import Coverage, clock_time, describe
from guardrail.text import format_duration, iso


def coverage_by_region(store: Any, rollout_id: str, layout: list[dict[str, Any]],
                       phase: str | None = None) -> tuple[str | None, dict]:
    """(the latest bake phase, or ``phase``, ``{region: [coverage entry, ...]}`` for it).

    ``unwatched``: the spans of real time nobody watched during the bake (its runner was
    halted or dead, until a resume or another worker took it over): no evidence, and not
    counted as bake either."""
    rows = store.coverage(rollout_id)
    phases = [f"bake:{w['name']}" for w in layout]
    present = [p for p in phases if any(r["phase"] == p for r in rows)]
    if not present:
        return None, {}
    phase = phase if phase in present else present[-1]
    wave = layout[phases.index(phase)]
    required = float(wave.get("bake") or 0.0) * float(wave.get("min_coverage") or 1.0)
    step = store.step(rollout_id, phase) or {}
    unwatched = (step.get("detail") or {}).get("unwatched") or []
    gone = (f"; {format_duration(round(sum(b - a for a, b in unwatched)))} unwatched at "
            + ", ".join(f"{clock_time(a)}–{clock_time(b)}" for a, b in unwatched[-3:])) if unwatched else ""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["phase"] != phase:
            continue
        cov = Coverage(row["covered"], row["uncovered"], [list(s) for s in row["spans"]], row["applies"])
        name = f"{row['region']} {row['policy']}/{row['check']}"
        out.setdefault(row["region"], []).append({
            "check": f"{row['policy']}/{row['check']}", "covered": cov.covered, "required": required,
            "applies": cov.applies, "uncovered": cov.uncovered,
            "without_evidence": [[iso(a), iso(b)] for a, b in cov.spans],
            "unwatched": [[iso(a), iso(b)] for a, b in unwatched],
            "complete": cov.lacking(required) <= 1e-6, "text": describe(name, cov, required) + gone,
        })
    return phase, out


def region_verdict(region: str, *, deploy: dict | None, rollback: dict | None, row: dict[str, Any],
                   failed: dict | None, wave_passed: bool) -> str:
    if deploy is None:
        return "not_deployed"
    if deploy["status"] == "failed":
        return "deploy_not_started" if (deploy["detail"] or {}).get("started") is False else "deploy_failed"
    findings = (failed or {}).get("findings") or []
    if any(f.get("region") == region and f.get("check") != "deploy" for f in findings):
        return "fail"
    if failed is not None and failed.get("aborted"):
        return "aborted"
    if rollback is not None or failed is not None:
        return "rolled_back"
    if row["state"] == "halted" and (row["reason"] or "").startswith("paused"):
        return "paused"
    if wave_passed:
        return "pass"
    return "inconclusive" if row["state"] == "halted" else "pending"
