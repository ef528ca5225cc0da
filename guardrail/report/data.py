"""What a rollout report shows, gathered from the store in a handful of queries.

A long rollout holds hundreds of thousands of measurements. ``store.measurements``
builds a dict for every row: fine for an incident's last ten
values, far too much to plot 200k of them. The report therefore asks the store's
``measurements`` view for aggregates:

- one row per (phase, region, check): counts, first and last times, the id of the
  first failure and of the last evaluation (``_groups``);
- those decisive rows, by id, with their evidence (``store.measurements_by_id``);
- for the plots, the min and max value per time bucket, one bucket per horizontal
  pixel of a plot (``_buckets``), so the page stays small however long the bake.

Verdicts per phase follow the engine: a failure anywhere in a bake fails that check
in that region; otherwise the last evaluation decides, and a last evaluation that is
inconclusive or still holding a breach is not clean evidence (``inconclusive``). A pass
of a check that warned during the bake (``check.warned``) shows as ``warn``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardrail.language.documents import display_name
from guardrail.errors import NotFound
from guardrail.state.protocol import Store
from guardrail.report.summary import summarize
from guardrail.language.yamldoc import parse
from guardrail.report.timeline import Mark, Span, build_timeline
from guardrail.text import number

PLOT_BUCKETS = 356
"""Time buckets per plot: the width of a plot's drawing area in SVG units."""
RANK = {"pass": 0, "skipped": 0, "warn": 0.5, "pending": 1, "inconclusive": 2, "fail": 3}
STATUS_OF_RANK = {0: "pass", 1: "pending", 2: "inconclusive", 3: "fail"}


@dataclass(frozen=True)
class Bucket:
    """The measurements of one check in one region within one horizontal pixel."""

    start: float
    end: float
    low: float | None
    high: float | None
    worst: int  # RANK of the worst status in the bucket
    threshold: float | None
    reference: float | None


@dataclass
class Verdict:
    """One check in one region over one phase (``bake:<wave>`` or ``recovery``)."""

    phase: str
    region: str
    policy: str
    check: str
    status: str  # pass | fail | inconclusive | skipped | warn
    evaluations: int
    failures: int
    inconclusives: int
    first_at: float
    last_at: float
    breach_at: float | None
    failed_at: float | None
    row: dict[str, Any]

    @property
    def wave(self) -> str | None:
        return self.phase.removeprefix("bake:") if self.phase.startswith("bake:") else None

    @property
    def reason(self) -> str:
        row = self.row
        if row.get("reason"):
            return row["reason"]
        if row.get("value") is not None and row.get("comparison"):
            return f"{fmt(row['value'])} (fails if {row['comparison']})"
        return row.get("status") or ""


@dataclass
class Baseline:
    value: float | None
    window_start: float
    window_end: float
    stat: str
    samples: int
    error: str | None


@dataclass
class CheckView:
    policy: str
    name: str
    spec: dict[str, Any] = field(default_factory=dict)
    """The check as written in its policy file (empty when the file is gone)."""
    location: str | None = None
    comparison: str | None = None
    queries: dict[str, str] = field(default_factory=dict)
    series: dict[str, list[Bucket]] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    baselines: dict[str, Baseline] = field(default_factory=dict)
    controls: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.policy}/{self.name}"

    @property
    def regions(self) -> list[str]:
        return list(self.series)

    @property
    def status(self) -> str:
        """The worst verdict over the bakes (recovery is judged separately)."""
        bakes = [v for v in self.verdicts if v.wave is not None]
        if not bakes:
            return "not_evaluated"
        worst = max(bakes, key=lambda v: RANK[v.status])
        return worst.status

    def verdict(self, region: str, phase: str) -> Verdict | None:
        return next((v for v in self.verdicts if v.region == region and v.phase == phase), None)


@dataclass
class SourceFile:
    role: str  # plan | policy
    path: str
    text: str | None
    note: str


@dataclass
class Report:
    rollout: dict[str, Any]
    summary: dict[str, Any]
    waves: list[dict[str, Any]]
    start: float
    end: float
    events: list[dict[str, Any]]
    spans: list[Span]
    marks: list[Mark]
    checks: list[CheckView]
    incident: dict[str, Any] | None
    deliveries: list[dict[str, Any]]
    files: list[SourceFile]
    measurements: int
    generated_at: float

    @property
    def id(self) -> str:
        return self.rollout["id"]

    @property
    def outcome(self) -> str:
        return self.summary["outcome"] or self.rollout["state"]

    def region_order(self) -> list[str]:
        return [r for w in self.waves for r in w["regions"]]

    def wave_verdicts(self) -> list[Verdict]:
        return [v for c in self.checks for v in c.verdicts if v.wave is not None]


fmt = number  # the name the report modules use


# -- reading the store ----------------------------------------------------------------


def _verdicts(store: Store, rollout_id: str) -> list[Verdict]:
    groups = store.verdict_groups(rollout_id)
    rows = store.measurements_by_id({g[9] for g in groups if g[9] is not None} | {g[10] for g in groups})
    out = []
    for phase, region, policy, check, count, first, last, fails, incs, fail_id, last_id, breach in groups:
        last_row = rows[last_id]
        if phase == "recovery":  # recovered or not: the last evaluation says
            status = _clean(last_row)
            row = last_row
        elif fails:
            status, row = "fail", rows[fail_id]
        else:
            status, row = _clean(last_row), last_row
        failed_at = row["at"] if status == "fail" else None
        breach_at = row.get("breach_since") if status == "fail" else breach
        out.append(Verdict(phase, region, policy, check, status, count, fails or 0, incs or 0, first, last,
                           breach_at, failed_at, row))
    return out


def _clean(row: dict[str, Any]) -> str:
    if row["status"] not in ("pass", "warn"):
        return row["status"]
    if row["pending"]:
        return "inconclusive"  # a breach still holding: not clean evidence (the engine agrees)
    return "skipped" if row["evidence"].get("skipped") else row["status"]


def _buckets(store: Store, rollout_id: str, start: float, end: float,
             count: int) -> dict[tuple[str, str], dict[str, list[Bucket]]]:
    width = max(end - start, 1e-6) / count
    out: dict[tuple[str, str], dict[str, list[Bucket]]] = {}
    for policy, check, region, _, t0, t1, low, high, worst, threshold, reference in store.measurement_buckets(
            rollout_id, start, width, count):
        out.setdefault((policy, check), {}).setdefault(region, []).append(
            Bucket(t0, t1, low, high, worst, threshold, reference))
    return out


# -- files ----------------------------------------------------------------------------


def _files(row: dict[str, Any], started: dict[str, Any] | None) -> list[SourceFile]:
    paths = [("plan", row["plan_path"])] + [("policy", p) for p in (started or {}).get("policies", [])]
    texts = []
    for role, path in paths:
        try:
            texts.append((role, path, Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            texts.append((role, path, None))
    unchanged = None
    if started is not None and all(t is not None for _, _, t in texts):
        digest = hashlib.sha256()  # as guardrail.api computes it when the rollout starts
        for _, _, text in texts:
            digest.update(text.encode())
        unchanged = digest.hexdigest() == row["plan_digest"]
    out = []
    for role, path, text in texts:
        if text is None:
            note = f"no longer at {path}: the report cannot show it"
        elif unchanged is None:
            note = "as it is now (the rollout recorded no digest to compare with)"
        elif unchanged:
            note = "unchanged since the rollout ran"
        else:
            note = "as it is NOW: the plan or its policies changed since the rollout ran"
        out.append(SourceFile(role, display_name(Path(path)), text, note))
    return out


def _specs(files: list[SourceFile]) -> dict[tuple[str, str], tuple[dict[str, Any], str]]:
    """(policy, check) → (the check as written plus its policy's settings, file:line)."""
    out = {}
    for source in files:
        if source.role != "policy" or source.text is None:
            continue
        doc = parse(source.text, source.path)
        data = doc.data if isinstance(doc.data, dict) else {}
        policy = {k: data.get(k) for k in ("interval", "on_no_data", "inconclusive_limit", "on_inconclusive")}
        for i, check in enumerate(data.get("checks") or []):
            if isinstance(check, dict) and "name" in check:
                line = doc.position(("checks", i, "name"))[0]
                out[(str(data.get("name")), str(check["name"]))] = ({**check, "policy": policy},
                                                                    f"{source.path}:{line}")
    return out


# -- the whole report -------------------------------------------------------------------


def gather(store: Store, rollout_id: str, *, buckets: int = PLOT_BUCKETS) -> Report:
    """Everything the report shows about one rollout (a unique id prefix is enough)."""
    row = store.rollout(rollout_id)
    rid = row["id"]
    events = store.events(rid)
    steps = store.steps(rid)
    started = next((e for e in events if e["kind"] == "rollout.started"), None)
    verdicts = _verdicts(store, rid)
    warned = {(f"bake:{e.get('wave')}", e.get("region"), e.get("policy"), e.get("check"))
              for e in events if e["kind"] == "check.warned"}
    for v in verdicts:
        if v.status == "pass" and (v.phase, v.region, v.policy, v.check) in warned:
            v.status = "warn"
    times = [row["clock_start"]] + [e["at"] for e in events] + [v.last_at for v in verdicts] \
        + [s["finished_at"] or s["started_at"] for s in steps]
    start, end = min(times), max(times)
    if end - start < 60:
        end = start + 60
    files = _files(row, started)
    checks = _checks(verdicts, _buckets(store, rid, start, end, buckets), _specs(files), store.baselines(rid))
    waves = (started or {}).get("waves") or []
    spans, marks = build_timeline(waves, events, steps, verdicts, end)
    try:
        incident = store.incident(rid)
    except NotFound:
        incident = None
    deliveries = [d for d in store.deliveries() if incident and d["incident_id"] == incident["id"]]
    return Report(rollout=row, summary=summarize(store, rid), waves=waves, start=start, end=end, events=events,
                  spans=spans, marks=marks, checks=checks, incident=incident, deliveries=deliveries, files=files,
                  measurements=store.measurement_count(rid), generated_at=time.time())


def _checks(verdicts: list[Verdict], series: dict, specs: dict, baselines: dict) -> list[CheckView]:
    views: dict[tuple[str, str], CheckView] = {}
    for key, (spec, location) in specs.items():  # policy order, even for checks never evaluated
        views[key] = CheckView(key[0], key[1], spec=spec, location=location)
    for v in sorted(verdicts, key=lambda v: (v.first_at, v.phase)):
        view = views.setdefault((v.policy, v.check), CheckView(v.policy, v.check))
        view.verdicts.append(v)
        view.comparison = view.comparison or v.row.get("comparison")
        view.queries.setdefault(v.region, v.row.get("query") or "")
        for region in v.row["evidence"].get("controls") or []:
            if region not in view.controls:
                view.controls.append(region)
    for key, by_region in series.items():
        view = views.setdefault(key, CheckView(*key))
        view.series = by_region
    for (region, policy, check), b in baselines.items():
        view = views.get((policy, check))
        if view is not None:
            evidence = b.get("evidence") or {}
            view.baselines[region] = Baseline(b["value"], b["window_start"], b["window_end"],
                                              evidence.get("stat", "mean"), evidence.get("samples", 0),
                                              evidence.get("error"))
    ordered = list(views.values())
    # The failing checks first: that is what the reader came for.
    return sorted(ordered, key=lambda c: -RANK.get(c.status, -1))
