"""The syntax tree of the sim's PromQL subset, and the functions it knows.

Each node knows its PromQL type (scalar, vector, matrix or string), so the parser can
reject an ill-typed query before anything is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

# name -> (argument types, result type)
FUNCTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    **{f: (("matrix",), "vector") for f in ("rate", "increase", "delta", "irate", "avg_over_time", "max_over_time",
                                           "min_over_time", "sum_over_time", "count_over_time", "last_over_time")},
    "abs": (("vector",), "vector"), "ceil": (("vector",), "vector"), "floor": (("vector",), "vector"),
    "clamp_min": (("vector", "scalar"), "vector"), "clamp_max": (("vector", "scalar"), "vector"),
    "vector": (("scalar",), "vector"), "scalar": (("vector",), "scalar"), "time": ((), "scalar"),
}


class PromQLError(ValueError):
    """A query the simulator cannot parse or does not support; the message names why."""


class Node:
    """An expression; ``type`` is its PromQL type: scalar, vector, matrix or string."""

    type: ClassVar[str] = "scalar"


@dataclass(frozen=True)
class NumberLiteral(Node):
    value: float


@dataclass(frozen=True)
class StringLiteral(Node):
    value: str
    type: ClassVar[str] = "string"


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    regex: Any = None

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = self.regex.fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class VectorSelector(Node):
    name: str | None
    matchers: tuple[Matcher, ...]
    offset_ms: int = 0
    type: ClassVar[str] = "vector"

    @property
    def key(self) -> tuple:
        return self.name, tuple((m.name, m.op, m.value) for m in self.matchers)

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class MatrixSelector(Node):
    vector: VectorSelector
    range_ms: int
    type: ClassVar[str] = "matrix"


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple[Node, ...]

    @property
    def type(self) -> str:  # type: ignore[override]
        return FUNCTIONS[self.func][1]


@dataclass(frozen=True)
class Aggregate(Node):
    op: str
    expr: Node
    grouping: tuple[str, ...] = ()
    without: bool = False
    type: ClassVar[str] = "vector"


@dataclass(frozen=True)
class Binary(Node):
    op: str
    lhs: Node
    rhs: Node
    return_bool: bool = False

    @property
    def type(self) -> str:  # type: ignore[override]
        return "vector" if "vector" in (self.lhs.type, self.rhs.type) else "scalar"


@dataclass(frozen=True)
class Unary(Node):
    """Negation (unary plus is dropped while parsing)."""

    expr: Node

    @property
    def type(self) -> str:  # type: ignore[override]
        return self.expr.type
