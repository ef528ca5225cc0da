"""The rollout as time spans and decisions: what the timeline draws and the event log says.

Spans come from the store's steps (deploy, rollback: started before the call, finished
after it) and from the measured phases (a region bakes from its first to its last
evaluation in ``bake:<wave>``; recovery likewise); decisions are the state events.
With a virtual clock a deploy takes no time at all: the drawing gives such spans a
minimum width rather than hiding them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guardrail.language.types import format_duration
from guardrail.report.event_text import describe  # noqa: F401  (html.py imports it from here)

if TYPE_CHECKING:
    from guardrail.report.data import Verdict

WAVES_ROW = "waves"


@dataclass(frozen=True)
class Span:
    row: str  # a region, or WAVES_ROW
    kind: str  # bake | deploy | version | rollback | recovery
    start: float
    end: float
    label: str
    ok: bool = True


@dataclass(frozen=True)
class Mark:
    at: float
    kind: str
    label: str
    tone: str  # fail | pass | warn | info
    row: str | None = None  # None: a decision across every row

    @property
    def short(self) -> str:
        return _SHORT.get(self.kind, self.kind)


_DECISIONS = {
    "state.failed": ("fail", "failed"),
    "state.aborted": ("fail", "aborted"),
    "state.rollback_failed": ("fail", "a person is needed"),
    "state.halted": ("warn", "halted"),
    "state.refused": ("warn", "refused"),
    "state.promoted": ("pass", "promoted"),
    "state.done": ("pass", "recovered"),
    "wave.passed": ("pass", "wave passed"),
    "recovery.relapsed": ("warn", "relapse"),
    "rollout.resumed": ("info", "resumed"),
    "window.overridden": ("warn", "freeze overridden"),
}
_SHORT = {kind: short for kind, (_, short) in _DECISIONS.items()} | {"incident.delivery_failed": "not delivered"}
INCIDENT_STATUSES = {f"incident.{s}" for s in ("investigating", "identified", "monitoring", "resolved")}


def build_timeline(waves: list[dict[str, Any]], events: list[dict[str, Any]], steps: list[dict[str, Any]],
                   verdicts: list[Verdict], end: float) -> tuple[list[Span], list[Mark]]:
    by_key = {s["key"]: s for s in steps}
    spans: list[Span] = []
    phases: dict[tuple[str, str], list[float]] = {}
    for v in verdicts:
        window = phases.setdefault((v.phase, v.region), [v.first_at, v.last_at])
        window[0], window[1] = min(window[0], v.first_at), max(window[1], v.last_at)
    for wave in waves:
        bake = by_key.get(f"bake:{wave['name']}")
        if bake is not None:
            ends = [w[1] for (phase, _), w in phases.items() if phase == f"bake:{wave['name']}"]
            spans.append(Span(WAVES_ROW, "bake", bake["started_at"], max(ends, default=bake["started_at"]),
                              f"wave {wave['name']}: bake {format_duration(wave.get('bake') or 0)}"))
        for region in wave["regions"]:
            spans += _region_spans(region, by_key, end)
    for (phase, region), (first, last) in phases.items():
        kind = "recovery" if phase == "recovery" else "bake"
        label = "verifying recovery" if kind == "recovery" else f"baking in wave {phase.removeprefix('bake:')}"
        spans.append(Span(region, kind, first, last, label))
    marks = []
    for e in events:
        if e["kind"] in _DECISIONS:
            tone, _ = _DECISIONS[e["kind"]]
            marks.append(Mark(e["at"], e["kind"], describe(e) or e["kind"], tone))
        elif e["kind"] in INCIDENT_STATUSES:
            marks.append(Mark(e["at"], e["kind"], describe(e) or e["kind"], "info"))
        elif e["kind"] == "incident.delivery_failed":
            marks.append(Mark(e["at"], e["kind"], describe(e) or e["kind"], "warn"))
        elif e["kind"] == "action.ran" and e.get("region"):
            marks.append(Mark(e["at"], e["kind"], describe(e) or e["kind"], "info" if e.get("ok") else "fail",
                              row=e["region"]))
    return spans, marks


def _region_spans(region: str, by_key: dict[str, dict[str, Any]], end: float) -> list[Span]:
    out = []
    deploy, rollback = by_key.get(f"deploy:{region}"), by_key.get(f"rollback:{region}")
    if deploy is not None:
        detail = (deploy.get("detail") or {}).get("outcome") or ""
        ok = deploy["status"] != "failed"
        out.append(Span(region, "deploy", deploy["started_at"], deploy["finished_at"] or end,
                        f"deploy: {deploy['status']}" + (f": {detail}" if detail else ""), ok))
        if deploy["status"] == "done":
            back = rollback["finished_at"] if rollback and rollback["status"] == "done" else end
            out.append(Span(region, "version", deploy["finished_at"], back, "runs the new version"))
    if rollback is not None:
        detail = (rollback.get("detail") or {}).get("outcome") or ""
        out.append(Span(region, "rollback", rollback["started_at"], rollback["finished_at"] or end,
                        f"rollback: {rollback['status']}" + (f": {detail}" if detail else ""),
                        rollback["status"] != "failed"))
    return out
