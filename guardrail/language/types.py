"""Value types of the YAML language: durations, comparisons, templates.

Each parses from the text a policy author writes and keeps that text for messages,
so evidence reads ``> 30`` rather than a repr.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Annotated, Any, Callable

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"


def parse_duration(value: Any) -> float:
    """``30s``, ``5m``, ``2h``, ``1d``, ``1h30m`` → seconds (float)."""
    if isinstance(value, bool):
        raise ValueError(f'expected a duration like "30s", "5m", "2h" or "1d", got {value!r}')
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        raise ValueError(f'expected a duration with a unit like "{value}s" or "{value}m", got {value!r}')
    text = str(value).strip()
    if not _DURATION.match(text):
        raise ValueError(f'expected a duration like "30s", "5m", "2h" or "1d", got {value!r}')
    return float(sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text)))


def format_duration(seconds: float) -> str:
    """Seconds → the shortest exact duration text (``90`` → ``1m30s``)."""
    if seconds <= 0:
        return "0s"
    out, rest = "", float(seconds)
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        count = int(rest // size)
        if count:
            out += f"{count}{unit}"
            rest -= count * size
    if rest > 1e-9:
        out += f"{round(rest * 1000)}ms"
    return out


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "5m", "2h", "1d"]}),
]

_OPERATORS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([+-])?\s*(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*(%)?\s*$")
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
    match = _COMPARISON.match(value)
    if not match:
        raise ValueError(f'expected a comparison like "> 30", "<= 0.5" or "> +20%", got {value!r}')
    op, sign, number, percent = match.groups()
    magnitude = float(number) * (-1 if sign == "-" else 1)
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

_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_BROKEN_TEMPLATE = re.compile(r"\{\{(?!\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\})")
BUILTIN_TEMPLATE_NAMES = frozenset({"region", "version", "previous", "service", "idempotency_key", "rollout_id"})


def template_names(text: str) -> list[str]:
    """The ``{{name}}`` placeholders in ``text``, in order."""
    return _TEMPLATE.findall(text)


def check_template(text: str) -> str:
    """Reject ``{{ bad name`` and friends early, where the author can see them."""
    if _BROKEN_TEMPLATE.search(text):
        raise ValueError(f"malformed template in {text!r}: placeholders look like {{{{region}}}}")
    return text


def _verbatim(value: str) -> str:
    return value


def _takes_before(escape: Callable[..., str]) -> bool:
    """Whether ``escape`` declares a ``before`` parameter (matched by name, as pluggy
    matches hook arguments): it then learns where each value lands."""
    try:
        return "before" in inspect.signature(escape).parameters
    except (TypeError, ValueError):  # a callable without a readable signature takes the value only
        return False


def render(text: str, variables: dict[str, Any], escape: Callable[..., str] = _verbatim) -> str:
    """Fill ``{{name}}`` placeholders; each value goes through ``escape`` for where it lands.

    ``escape(value)`` gets the value as text, a list's items joined with commas. An escape
    that declares a ``before`` parameter is called ``escape(value, before=...)`` with the
    template text preceding the placeholder, so it can tell one place from another (a
    PromQL regex matcher from a plain string), and gets a list as a list of strings, to
    join in the way that place reads it."""
    contextual = _takes_before(escape)

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise KeyError(name)
        value = variables[name]
        if contextual:
            items = [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value)
            return escape(items, before=text[:match.start()])
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        return escape(str(value))

    return _TEMPLATE.sub(fill, text)


Template = Annotated[str, BeforeValidator(lambda v: check_template(v) if isinstance(v, str) else v)]


def render_value(value: Any, variables: dict[str, Any], escape: Callable[..., str] = _verbatim) -> Any:
    """Render templates inside strings, lists and mappings. A string that is exactly one
    placeholder takes the variable's own value, so ``targets: "{{smtp_hosts}}"`` is a list
    (each item escaped on its own, as a value with nothing before it)."""
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole and whole.group(1) in variables and isinstance(variables[whole.group(1)], (list, tuple)):
            one = (lambda v: escape(v, before="")) if _takes_before(escape) else escape
            return [one(str(v)) for v in variables[whole.group(1)]]
        return render(value, variables, escape)
    if isinstance(value, list):
        return [render_value(v, variables, escape) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, variables, escape) for k, v in value.items()}
    return value
