"""How fresh the samples behind a PromQL reading are: one companion query per reading.

Prometheus answers an instant query with the last sample of each series from up to 5
minutes back (its lookback delta), and a window function such as ``increase(x[15m])``
with whatever samples its window holds. So a scrape outage is invisible in the value:
a gauge freezes, a counter's increase is computed from the minutes that still have
samples. The value alone cannot say it rests on old data; the samples' timestamps can.

For a check's query the source finds its input selectors (``inputs``), and asks, in one
request, for each selector ``S`` the newest sample time over its series,
``max(timestamp(S))``, and for each windowed selector ``S[W]`` the most samples a
series holds in the window, ``max(count_over_time(S[W]))``; each part is tagged with a
``guardrail_input`` label and joined with ``or`` (``companion_query``). From the answer
(``freshness``):

- ``newest_sample``: the oldest of the selectors' newest samples (every input must be
  fresh; an input with no sample at all gives ``-inf``);
- ``window_coverage``: for each windowed selector, ``(count + 1) * interval / W``
  capped at 1 (one interval of grace for where the window's edges fall between
  scrapes), and the smallest of those.

What is left out: selectors with ``offset`` or ``@`` look at the past on purpose, and
selectors inside a subquery (``max_over_time(rate(x[5m])[1h:])``) are judged as
instant selectors only. Finding selectors is lexical (``inputs``): a query it cannot
read gives no freshness (None), never a wrong one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from guardrail.plugin.readings import Freshness

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "offset", "atan2", "inf", "nan"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
TAG = "guardrail_input"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<braces>\{)
  | (?P<brackets>\[[^\]]*\])
  | (?P<duration>(?:\d+(?:ms|s|m|h|d|w|y))+(?![A-Za-z0-9_:]))
  | (?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True)
class Input:
    """One selector of a query: its text (``name{matchers}``) and its window, if any."""

    selector: str
    window: float | None = None


def _braces(query: str, at: int) -> int:
    """The index just past the ``}`` that closes the ``{`` at ``at`` (strings skipped)."""
    i, quote = at + 1, None
    while i < len(query):
        c = query[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c == "}":
            return i + 1
        i += 1
    raise ValueError("unclosed {")


def _seconds(text: str) -> float | None:
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def inputs(query: str) -> list[Input] | None:
    """The input selectors of ``query``, each once, or None when it cannot be read."""
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    try:
        while pos < len(query):
            match = _TOKEN.match(query, pos)
            kind = match.lastgroup
            if kind == "braces":
                end = _braces(query, pos)
                tokens.append(("braces", query[pos:end], pos))
                pos = end
                continue
            if kind != "space":
                tokens.append((kind, match.group(), pos))
            pos = match.end()
    except ValueError:
        return None
    found: list[Input] = []
    i = 0
    while i < len(tokens):
        kind, text, _ = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if kind == "name" and text in LABEL_LISTS and following and following[1] == "(":
            close = next((j for j in range(i + 2, len(tokens)) if tokens[j][1] == ")"), None)
            if close is None:
                return None
            i = close + 1
            continue
        if kind == "name" and (text.lower() in KEYWORDS or (following and following[1] == "(")
                               or (following and following[0] == "name" and following[1] in ("by", "without"))):
            i += 1
            if text == "offset" and following is not None:
                i += 1  # the duration after it
            continue
        if kind == "name" or kind == "braces":
            selector = text
            j = i + 1
            if kind == "name" and following and following[0] == "braces":
                selector += following[1]
                j += 1
            window = None
            if j < len(tokens) and tokens[j][0] == "brackets":
                inner = tokens[j][1][1:-1].strip()
                if ":" in inner:  # a subquery's range applies to an expression, not this selector
                    return None
                window = _seconds(inner)
                if window is None:
                    return None
                j += 1
            if j < len(tokens) and (tokens[j][1] == "offset" or tokens[j][1] == "@"):
                i = j + 2
                continue  # looks at the past on purpose
            candidate = Input(selector, window)
            if candidate not in found:
                found.append(candidate)
            i = j
            continue
        i += 1
    return found


def companion_query(selectors: list[Input]) -> str | None:
    """One query answering, per input, its newest sample time and (windows) its count."""
    parts = []
    for n, item in enumerate(selectors):
        parts.append(f'label_replace(max(timestamp({item.selector})), "{TAG}", "t{n}", "", "")')
        if item.window is not None:
            parts.append(f'label_replace(max(count_over_time({item.selector}[{_duration(item.window)}])), '
                         f'"{TAG}", "c{n}", "", "")')
    return " or ".join(parts) if parts else None


def freshness(selectors: list[Input], answer: dict[str, float], interval: float) -> Freshness:
    """The freshness of a reading from the companion query's ``answer`` (tag → value)."""
    newest = math.inf
    coverage: float | None = None
    for n, item in enumerate(selectors):
        newest = min(newest, answer.get(f"t{n}", -math.inf))
        if item.window is not None:
            count = answer.get(f"c{n}", 0.0)
            share = min(1.0, (count + 1) * interval / item.window)
            coverage = share if coverage is None else min(coverage, share)
    return Freshness(None if math.isinf(newest) and newest > 0 else newest, coverage, interval)


def _duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"
