"""Covered bake time: how much of a bake each check in each region has evidence for.

Tick ``k`` of a phase (at ``start + k * interval``) speaks for the interval that ends
with it. When its verdict is a clean pass on fresh data (``judge.covers``) that
interval is *covered*; otherwise it is a span *without evidence* (no data, stale data,
inconclusive, a control window still filling). Tick 0 speaks
for nothing (the bake starts with it), and ticks that were never evaluated (a real
clock's time while halted, paused or dead) are neither: they simply add nothing.

A wave passes only when every check of every deployed region has covered
``min_coverage`` of its bake. The count is rebuilt from the stored ticks when a phase
resumes, so halts and resumes can never make it larger than the evidence is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from guardrail.judging.judge import Verdict, covers
from guardrail.text import format_duration

MAX_SPANS = 20
"""Spans without evidence kept per check and region (the latest ones)."""


@dataclass
class Coverage:
    """The covered time of one check in one region during one phase."""

    covered: float = 0.0
    uncovered: float = 0.0
    spans: list[list[float]] = field(default_factory=list)
    """``[from, to]`` of evaluated time without evidence, merged, the latest ``MAX_SPANS``."""
    applies: bool = True
    """False while every evaluation skipped the check (``on_no_control: skip``)."""

    def add(self, tick: int, at: float, interval: float, verdict: Verdict | None) -> None:
        """Account for one evaluation (tick ``tick`` at ``at``)."""
        if verdict is not None and verdict.skipped:
            self.applies = False
            return
        self.applies = True
        if tick <= 0:
            return
        if covers(verdict):
            self.covered += interval
            return
        self.uncovered += interval
        begin = at - interval
        if self.spans and abs(self.spans[-1][1] - begin) < 1e-6:
            self.spans[-1][1] = at
        else:
            self.spans.append([begin, at])
            del self.spans[:-MAX_SPANS]

    def lacking(self, required: float) -> float:
        """Seconds of covered time still missing (0 when enough, or the check does not apply)."""
        return max(0.0, required - self.covered) if self.applies else 0.0


def clock_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M")


def describe(name: str, coverage: Coverage, required: float) -> str:
    """``r3 latency-p95: 27m of 30m covered; 3m without fresh evidence at 11:15–11:18``."""
    text = f"{name}: {format_duration(coverage.covered)} of {format_duration(required)} covered"
    if coverage.uncovered:
        spans = ", ".join(f"{clock_time(a)}–{clock_time(b)}" for a, b in coverage.spans[-3:])
        text += f"; {format_duration(coverage.uncovered)} without fresh evidence at {spans}"
    return text
