"""Value types of the YAML language: durations, comparisons, templates.

Each parses from the text a policy author writes and keeps that text for messages,
so evidence reads ``> 30`` rather than a repr.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from guardrail.plugin.templates import (BUILTIN_TEMPLATE_NAMES, check_template, render, render_value,
                                        template_names)
from guardrail.plugin.types import Duration, Template
from guardrail.text import DURATION_PATTERN, format_duration, long_text, parse_duration

__all__ = ["BUILTIN_TEMPLATE_NAMES", "Comparison", "ComparisonText", "DURATION_PATTERN", "Duration", "Template",
           "check_template", "format_duration", "parse_comparison", "parse_duration", "render", "render_value",
           "template_names"]

_OPERATORS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
# No two optional blanks touch: "> " followed by thousands of spaces must not backtrack
# quadratically. The text is stripped before it is matched.
_COMPARISON = re.compile(r"^(>=|<=|==|!=|>|<)\s*(?:([+-])\s*)?(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?:\s*(%))?$")
COMPARISON_PATTERN = r"^\s*(>=|<=|==|!=|>|<)\s*[+-]?\s*\d+(\.\d+)?([eE][+-]?\d+)?\s*%?\s*$"


@dataclass(frozen=True)
class Comparison:
    """``> 30`` (absolute) or ``> +20%`` / ``< -10%`` / ``> +5`` (relative to a baseline).

    A comparison is *relative* when its number carries an explicit sign or a percent
    sign; relative comparisons need ``compare: baseline`` (or ``control``) and are
    applied to the change from the reference value.
    """

    text: str
    op: str
    number: float
    relative: bool
    percent: bool

    def holds(self, value: float, reference: float | None = None) -> bool:
        """Whether the failure condition holds for ``value``."""
        return _OPERATORS[self.op](self.subject(value, reference), self.number)

    def subject(self, value: float, reference: float | None = None) -> float:
        """What is compared: the value itself, or its change from ``reference``."""
        if not self.relative:
            return value
        if reference is None:
            raise ValueError("a relative comparison needs a reference value")
        delta = value - reference
        if not self.percent:
            return delta
        if reference == 0:
            # Growth from zero is infinite when anything appears, nothing otherwise.
            return 0.0 if delta == 0 else float("inf") * (1 if delta > 0 else -1)
        return delta / abs(reference) * 100.0

    def threshold(self, reference: float | None = None) -> float:
        """The absolute value the comparison draws its line at (for plots and messages)."""
        if not self.relative or reference is None:
            return self.number
        if self.percent:
            return reference + abs(reference) * self.number / 100.0
        return reference + self.number

    def __str__(self) -> str:
        return self.text


def parse_comparison(value: Any) -> Comparison:
    if isinstance(value, Comparison):
        return value
    if not isinstance(value, str):
        raise ValueError(f'expected a comparison like "> 30" or "> +20%", got {value!r}')
    match = _COMPARISON.match(value.strip()) if len(value) <= 100 else None
    if not match:
        shown = long_text(value)
        raise ValueError(f'expected a comparison like "> 30", "<= 0.5" or "> +20%", got {shown}')
    op, sign, number, percent = match.groups()
    magnitude = float(number) * (-1 if sign == "-" else 1)
    if not math.isfinite(magnitude) or abs(magnitude) > 1e300:
        raise ValueError(f"the number in {value.strip()!r} is too large")
    return Comparison(
        text=value.strip(),
        op=op,
        number=magnitude,
        relative=bool(sign or percent),
        percent=bool(percent),
    )


ComparisonText = Annotated[
    Comparison,
    BeforeValidator(parse_comparison),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": COMPARISON_PATTERN, "examples": ["> 30", "<= 0.5", "> +20%"]}),
]

