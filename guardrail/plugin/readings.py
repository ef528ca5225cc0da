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
    newest_sample: float | None = None
    """How fresh the samples behind the value are: the time of the newest sample of the
    query's stalest input (for each input selector its newest sample over its series,
    then the oldest of those; ``-inf`` when an input has no sample at all). None: the
    source does not know (a live probe measures
    now, and is fresh by construction). The judgement compares it with the check's
    ``max_age`` (``guardrail.judging.evaluate.staleness``)."""
    window_coverage: float | None = None
    """For a query over range windows (``rate(x[5m])``): the smallest share, 0..1, of a
    window that holds samples (per windowed input, its best-covered series). None: no
    windows, or the source does not know. Compared with ``min_window_coverage``."""
    sample_interval: float | None = None
    """Seconds between two samples of the inputs, as the source learnt or was told (a
    scrape interval): the default ``max_age`` is twice it."""

    @classmethod
    def of(cls, value: float | None, **detail: Any) -> Reading:
        return cls(series=() if value is None else (Series({}, float(value)),), detail=detail)

    @classmethod
    def failed(cls, reason: str, **detail: Any) -> Reading:
        return cls(error=reason, detail=detail)

    def with_freshness(self, freshness: Freshness | None) -> Reading:
        """This reading with what a source learnt about its samples' ages."""
        if freshness is None:
            return self
        return Reading(self.series, self.error, self.detail, freshness.newest_sample, freshness.window_coverage,
                       freshness.sample_interval)


@dataclass(frozen=True)
class Freshness:
    """How old the samples behind a reading are (see ``Reading``'s fields of the same names)."""

    newest_sample: float | None
    window_coverage: float | None = None
    sample_interval: float | None = None


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
