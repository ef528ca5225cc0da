"""How fresh the samples behind a simulated reading are, by the ``prometheus`` source's
rules (``guardrail_plugins.prometheus_freshness``), read straight from the samples: for
each input selector its newest sample within the 5-minute lookback (the oldest of those
over the inputs), and for each windowed selector ``(count + 1) * step / window`` of its
best-covered series. Selectors with ``offset`` are left out, as there.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from typing import Any, Iterator

from guardrail.plugin.readings import Freshness

from .promql import LOOKBACK_MS, parse
from .promql_ast import Aggregate, Binary, Call, MatrixSelector, Node, Unary, VectorSelector


def _selectors(node: Node) -> Iterator[tuple[VectorSelector, int | None]]:
    if isinstance(node, VectorSelector):
        yield node, None
    elif isinstance(node, MatrixSelector):
        yield node.vector, node.range_ms
    elif isinstance(node, Call):
        for arg in node.args:
            yield from _selectors(arg)
    elif isinstance(node, Aggregate):
        yield from _selectors(node.expr)
    elif isinstance(node, Binary):
        yield from _selectors(node.lhs)
        yield from _selectors(node.rhs)
    elif isinstance(node, Unary):
        yield from _selectors(node.expr)


def sample_freshness(query: str, store: Any, at: float, interval: float) -> Freshness | None:
    """The freshness of ``query``'s reading at ``at`` (the store already prepared for it)."""
    t = int(round(at * 1000))
    newest = math.inf
    coverage: float | None = None
    for selector, window in _selectors(parse(query)):
        if selector.offset_ms:
            continue
        series = store.select(selector)
        latest = -math.inf
        best = 0
        for s in series:
            i = bisect_right(s.ts, t)
            if i and s.ts[i - 1] >= t - LOOKBACK_MS:  # timestamp() sees as far back as a selector
                latest = max(latest, s.ts[i - 1] / 1000.0)
            if window is not None:
                best = max(best, i - bisect_left(s.ts, t - window))
        newest = min(newest, latest)
        if window is not None:
            share = min(1.0, (best + 1) * interval * 1000.0 / window)
            coverage = share if coverage is None else min(coverage, share)
    if math.isinf(newest) and newest > 0:
        return None
    return Freshness(newest, coverage, interval)
