"""What a source is asked (``Probe``) and what it saw (``Reading``, ``RangeReading``):
plain data, shared by the plugins that measure and the judgement that reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Probe:
    """One check for one region, templates filled in."""

    check: str
    region: str
    params: dict[str, Any]
    """The source's own check keys (``query``, ``targets``...), rendered."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Reading:
    """What a source saw. No series (or only NaN) is *no data*; ``error`` is a
    provider failure (timeout, refused, bad query): always inconclusive."""

    series: tuple[Series, ...] = ()
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    """Evidence for people: failing hosts, status codes, the exact query sent."""

    @classmethod
    def of(cls, value: float | None, **detail: Any) -> Reading:
        return cls(series=() if value is None else (Series({}, float(value)),), detail=detail)

    @classmethod
    def failed(cls, reason: str, **detail: Any) -> Reading:
        return cls(error=reason, detail=detail)


@dataclass(frozen=True)
class RangeReading:
    """Samples over a window, for baselines and control comparisons."""

    points: tuple[tuple[float, float], ...] = ()
    """(time, the mean of the series at that time)."""
    error: str | None = None
    samples: tuple[tuple[float, tuple[float, ...]], ...] = ()
    """(time, every series' value at that time): a baseline for a check that reduces
    with ``sum``, ``max`` or ``min`` reduces these the same way, not their mean."""

    @classmethod
    def of(cls, samples: list[tuple[float, list[float]]]) -> RangeReading:
        """From every series' values per time (NaN already dropped; empty times skipped)."""
        kept = [(t, tuple(vs)) for t, vs in samples if vs]
        return cls(points=tuple((t, sum(vs) / len(vs)) for t, vs in kept), samples=tuple(kept))
