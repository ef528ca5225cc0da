"""A small PromQL evaluator with Prometheus 2.42's semantics, for the simulated fleet.

Why: the same policy file must give the same verdict against the sim and against a real
Prometheus, so the numbers must match where it matters, not merely look plausible:

- an instant selector takes the latest sample in [t - 5m, t] (the lookback delta);
- a range selector ``[r]`` takes the samples in [t - r, t], closed on both ends (2.x);
- ``rate``/``increase``/``delta`` use Prometheus's ``extrapolatedRate``: extrapolate to
  the window's edges when the first/last sample is within 1.1 average intervals of
  them, else by half an interval; counter resets add the value before the drop; a
  counter is not extrapolated below zero;
- functions other than ``last_over_time``, arithmetic and aggregations drop
  ``__name__``; comparisons filter unless ``bool`` is given.

Supported: selectors with ``= != =~ !~``, ``[range]``, ``offset``; ``rate increase
delta irate`` and ``avg/max/min/sum/count/last_over_time``; ``abs ceil floor clamp_min
clamp_max vector scalar time``; ``sum avg max min count`` with ``by``/``without``;
``+ - * / % ^`` and comparisons between scalars and vectors, and between vectors with
identical label sets; ``and``, ``or``, ``unless`` (so ``... or vector(0)`` works).
Anything else raises ``PromQLError`` (a ``ValueError``) naming the construct. Parsed
queries are cached by text.

A *store* provides the data: ``prepare(t_ms)`` once per query, then ``select(selector)``
returning ``SeriesData`` (timestamps in integer milliseconds, as Prometheus keeps them).
``StaticStore`` holds fixed samples (for tests); the sim's ``ScenarioStore`` generates them.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from functools import lru_cache
from collections.abc import Callable, Iterable
from typing import Any

from .promql_ast import (Aggregate, Binary, Call, MatrixSelector, Node, NumberLiteral, PromQLError, StringLiteral, Unary,
                         VectorSelector)
from .promql_parser import Parser

LOOKBACK_MS = 300_000
Vector = list  # of (labels, value) pairs
Labels = dict[str, str]

__all__ = ["PromQLError", "SeriesData", "StaticStore", "evaluate", "parse", "LOOKBACK_MS"]


class SeriesData:
    """One series' samples: sorted timestamps (ms) and values, as plain lists for bisect.

    ``corr[i]`` is the counter-reset correction accumulated up to sample ``i`` (the sum of
    the values just before each drop), so a window's correction is a subtraction.
    """

    __slots__ = ("labels", "ts", "vals", "_corr", "_plain")

    def __init__(self, labels: Labels, ts: list[int], vals: list[float], corr: list[float] | None = None):
        self.labels, self.ts, self.vals, self._corr, self._plain = labels, ts, vals, corr, None

    @property
    def corr(self) -> list[float]:
        if self._corr is None:
            total, out, vals = 0.0, [0.0], self.vals
            for prev, cur in zip(vals, vals[1:]):
                if cur < prev:
                    total += prev
                out.append(total)
            self._corr = out
        return self._corr

    @property
    def plain(self) -> Labels:
        """The labels without ``__name__`` (what most functions return), computed once."""
        if self._plain is None:
            self._plain = {k: v for k, v in self.labels.items() if k != "__name__"}
        return self._plain


class StaticStore:
    """Fixed samples: ``StaticStore([({"__name__": "x", "a": "1"}, [(t_seconds, value), ...])])``."""

    def __init__(self, series: Iterable[tuple[Labels, Iterable[tuple[float, float]]]]):
        self._series = []
        for labels, samples in series:
            points = sorted((int(round(t * 1000)), float(v)) for t, v in samples)
            self._series.append(SeriesData(dict(labels), [p[0] for p in points], [p[1] for p in points]))

    def prepare(self, t_ms: int) -> None:
        pass

    def select(self, selector: VectorSelector) -> list[SeriesData]:
        return [s for s in self._series if (selector.name is None or s.labels.get("__name__") == selector.name)
                and selector.matches(s.labels)]


@lru_cache(maxsize=4096)
def parse(query: str) -> Node:
    """The syntax tree of ``query`` (cached); PromQLError if unsupported or invalid."""
    node = Parser(query).parse()
    if node.type == "matrix":
        raise PromQLError("a range vector cannot be the result of a check; wrap it in a function such as rate()")
    if node.type == "string":
        raise PromQLError("a string cannot be the result of a check")
    return node


def evaluate(query: str, store: Any, at: float) -> list[tuple[Labels, float]] | float:
    """Evaluate ``query`` at ``at`` (epoch seconds, rounded to the millisecond as
    Prometheus does): a list of (labels, value) for a vector, a float for a scalar.
    The label dicts may be shared with the store: copy before changing them."""
    node = parse(query)
    t_ms = int(round(at * 1000))
    store.prepare(t_ms)
    return _EVAL[type(node)](node, store, t_ms)


# --- selectors and range functions -------------------------------------------------


def _vector_selector(node: VectorSelector, store: Any, t: int) -> Vector:
    t -= node.offset_ms
    oldest = t - LOOKBACK_MS
    out = []
    for s in store.select(node):
        i = bisect_right(s.ts, t) - 1
        if i >= 0 and s.ts[i] >= oldest:
            out.append((s.labels, s.vals[i]))
    return out


def _extrapolated(s: SeriesData, lo: int, hi: int, start: int, end: int, range_ms: int,
                  counter: bool, rate: bool) -> float | None:
    if hi - lo < 2:
        return None
    ts, vals = s.ts, s.vals
    first_t, last_t, first_v = ts[lo], ts[hi - 1], vals[lo]
    result = vals[hi - 1] - first_v
    if counter:
        corr = s.corr
        result += corr[hi - 1] - corr[lo]
    to_start = (first_t - start) / 1000.0
    to_end = (end - last_t) / 1000.0
    sampled = (last_t - first_t) / 1000.0
    average = sampled / (hi - lo - 1)
    if counter and result > 0 and first_v >= 0:
        to_zero = sampled * (first_v / result)
        if to_zero < to_start:
            to_start = to_zero
    threshold = average * 1.1
    interval = sampled + (to_start if to_start < threshold else average / 2) + (to_end if to_end < threshold else average / 2)
    result *= interval / sampled
    return result / (range_ms / 1000.0) if rate else result


def _irate(s: SeriesData, lo: int, hi: int, *_: Any) -> float | None:
    if hi - lo < 2:
        return None
    last, prev = s.vals[hi - 1], s.vals[hi - 2]
    interval = s.ts[hi - 1] - s.ts[hi - 2]
    return (last if last < prev else last - prev) / (interval / 1000.0)


RANGE_FUNCTIONS: dict[str, Callable[..., float | None]] = {
    "rate": lambda s, lo, hi, a, b, r: _extrapolated(s, lo, hi, a, b, r, True, True),
    "increase": lambda s, lo, hi, a, b, r: _extrapolated(s, lo, hi, a, b, r, True, False),
    "delta": lambda s, lo, hi, a, b, r: _extrapolated(s, lo, hi, a, b, r, False, False),
    "irate": _irate,
    "avg_over_time": lambda s, lo, hi, *_: sum(s.vals[lo:hi]) / (hi - lo),
    "sum_over_time": lambda s, lo, hi, *_: sum(s.vals[lo:hi]),
    "max_over_time": lambda s, lo, hi, *_: _nan_max(s.vals[lo:hi]),
    "min_over_time": lambda s, lo, hi, *_: _nan_min(s.vals[lo:hi]),
    "count_over_time": lambda s, lo, hi, *_: float(hi - lo),
    "last_over_time": lambda s, lo, hi, *_: s.vals[hi - 1],
}


def _nan_max(values: list[float]) -> float:
    clean = [v for v in values if v == v]
    return max(clean) if clean else math.nan


def _nan_min(values: list[float]) -> float:
    clean = [v for v in values if v == v]
    return min(clean) if clean else math.nan


def _call(node: Call, store: Any, t: int) -> Vector | float:
    name = node.func
    function = RANGE_FUNCTIONS.get(name)
    if function is not None:
        matrix = node.args[0]
        assert isinstance(matrix, MatrixSelector)
        end = t - matrix.vector.offset_ms
        start = end - matrix.range_ms
        keep_name = name == "last_over_time"
        out = []
        for s in store.select(matrix.vector):
            lo, hi = bisect_left(s.ts, start), bisect_right(s.ts, end)
            if hi > lo:
                value = function(s, lo, hi, start, end, matrix.range_ms)
                if value is not None:
                    out.append((s.labels if keep_name else s.plain, value))
        return out
    args = [_EVAL[type(a)](a, store, t) for a in node.args]
    if name == "time":
        return t / 1000.0
    if name == "vector":
        return [({}, args[0])]
    if name == "scalar":
        return args[0][0][1] if len(args[0]) == 1 else math.nan
    op: Callable[[float], float] = {
        "abs": abs, "ceil": _safe(math.ceil), "floor": _safe(math.floor),
        "clamp_min": lambda v: max(v, args[1]) if v == v else v,
        "clamp_max": lambda v: min(v, args[1]) if v == v else v,
    }[name]
    return [(_without_name(labels), float(op(value))) for labels, value in args[0]]


def _safe(fn: Callable[[float], int]) -> Callable[[float], float]:
    return lambda v: float(fn(v)) if math.isfinite(v) else v


# --- aggregation and arithmetic ----------------------------------------------------


def _aggregate(node: Aggregate, store: Any, t: int) -> Vector:
    vector = _EVAL[type(node.expr)](node.expr, store, t)
    if not vector:
        return []
    groups: dict[tuple, tuple[Labels, list[float]]] = {}
    if not node.grouping and not node.without:
        groups[()] = ({}, [v for _, v in vector])
    else:
        names = node.grouping
        for labels, value in vector:
            if node.without:
                kept = {k: v for k, v in labels.items() if k != "__name__" and k not in names}
                key = tuple(sorted(kept.items()))
            else:
                key = tuple(labels.get(n, "") for n in names)
                kept = {n: v for n, v in zip(names, key) if v != ""}
            entry = groups.get(key)
            if entry is None:
                groups[key] = (kept, [value])
            else:
                entry[1].append(value)
    reduce = _REDUCERS[node.op]
    return [(labels, reduce(values)) for labels, values in groups.values()]


_REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "sum": lambda vs: float(sum(vs)),
    "avg": lambda vs: sum(vs) / len(vs),
    "max": _nan_max,
    "min": _nan_min,
    "count": lambda vs: float(len(vs)),
}


def arithmetic(op: str, a: float, b: float, return_bool: bool = False) -> float:
    """``a op b`` as Prometheus computes it (IEEE division, Go's math.Mod, comparisons as 0/1)."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            return math.nan if a == 0 or a != a else math.copysign(math.inf, a) * math.copysign(1, b)
        return a / b
    if op == "%":
        return math.fmod(a, b) if b != 0 and math.isfinite(a) else math.nan
    if op == "^":
        try:
            return math.pow(a, b)
        except (OverflowError, ValueError):
            return math.inf if abs(a) > 1 else math.nan
    return float(_COMPARE[op](a, b))


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _binary(node: Binary, store: Any, t: int) -> Vector | float:
    lhs = _EVAL[type(node.lhs)](node.lhs, store, t)
    rhs = _EVAL[type(node.rhs)](node.rhs, store, t)
    op, compare = node.op, node.op in _COMPARE
    if op in ("and", "or", "unless"):
        return _set_operation(op, lhs, rhs)
    if node.lhs.type == "scalar" and node.rhs.type == "scalar":
        return arithmetic(op, lhs, rhs, node.return_bool)
    if node.rhs.type == "scalar" or node.lhs.type == "scalar":
        vector, scalar, left = (lhs, rhs, True) if node.rhs.type == "scalar" else (rhs, lhs, False)
        out = []
        for labels, value in vector:
            a, b = (value, scalar) if left else (scalar, value)
            result = arithmetic(op, a, b)
            if not compare:
                out.append((_without_name(labels), result))
            elif node.return_bool:
                out.append((_without_name(labels), result))
            elif result:
                out.append((labels, value))
        return out
    right: dict[tuple, float] = {}
    for labels, value in rhs:
        key = _signature(labels)
        if key in right:
            raise PromQLError(f"found duplicate series for the match group {dict(key)} on the right-hand side of {op!r}")
        right[key] = value
    out, seen = [], set()
    for labels, value in lhs:
        key = _signature(labels)
        if key not in right:
            continue
        if key in seen:
            raise PromQLError(f"found duplicate series for the match group {dict(key)} on the left-hand side of {op!r}")
        seen.add(key)
        result = arithmetic(op, value, right[key])
        if not compare or node.return_bool:
            out.append((_without_name(labels), result))
        elif result:
            out.append((labels, value))
    return out


def _set_operation(op: str, lhs: Vector, rhs: Vector) -> Vector:
    """Series are matched on all labels but ``__name__``; each side keeps its own labels."""
    right = {_signature(labels) for labels, _ in rhs}
    if op == "and":
        return [(labels, v) for labels, v in lhs if _signature(labels) in right]
    if op == "unless":
        return [(labels, v) for labels, v in lhs if _signature(labels) not in right]
    left = {_signature(labels) for labels, _ in lhs}
    return list(lhs) + [(labels, v) for labels, v in rhs if _signature(labels) not in left]


def _unary(node: Unary, store: Any, t: int) -> Vector | float:
    value = _EVAL[type(node.expr)](node.expr, store, t)
    if node.expr.type == "scalar":
        return -value
    return [(_without_name(labels), -v) for labels, v in value]


def _signature(labels: Labels) -> tuple:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


def _without_name(labels: Labels) -> Labels:
    return {k: v for k, v in labels.items() if k != "__name__"} if "__name__" in labels else labels


def _string(node: StringLiteral, store: Any, t: int) -> str:
    return node.value


_EVAL: dict[type, Callable[[Any, Any, int], Any]] = {
    NumberLiteral: lambda node, store, t: node.value,
    StringLiteral: _string,
    VectorSelector: _vector_selector,
    Call: _call,
    Aggregate: _aggregate,
    Binary: _binary,
    Unary: _unary,
}
