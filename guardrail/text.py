"""Text for people: durations, instants and numbers, written one way everywhere (the
terminal, reports, incidents, JSON reasons). A leaf: imports nothing of guardrail."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"
MAX_DURATION = 30 * 86400.0
"""The longest duration any setting accepts (30 days): longer is a typo, and every
duration then stays a finite number of seconds that clocks and sleeps accept."""


def parse_duration(value: Any) -> float:
    """``30s``, ``5m``, ``2h``, ``1d``, ``1h30m`` → seconds (float)."""
    if isinstance(value, bool):
        raise ValueError(f'expected a duration like "30s", "5m", "2h" or "1d", got {value!r}')
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        raise ValueError(f'expected a duration with a unit like "{value}s" or "{value}m", got {value!r}')
    text = str(value).strip()
    shown = long_text(value)
    if not _DURATION.match(text):
        raise ValueError(f'expected a duration like "30s", "5m", "2h" or "1d", got {shown}')
    seconds = float(sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text)))
    if not seconds <= MAX_DURATION:  # also false for an overflow to infinity
        raise ValueError(f"a duration may be at most {format_duration(MAX_DURATION)}, got {shown}")
    return seconds


def long_text(value: Any, limit: int = 100) -> str:
    """``repr(value)`` for a message, or only its length when it is long. Never a cut
    value: a secret interpolated into it is redacted whole, so half of one would show."""
    text = repr(value)
    return text if len(text) <= limit else f"a text of {len(str(value)):,} characters"


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


# C0 and C1 controls, DEL, and the characters that move or reorder text on a terminal:
# line/paragraph separators and the bidirectional overrides ("Trojan Source").
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def printable(value: Any) -> str:
    """Text from a user's files or a server, safe to show on one line: control characters,
    newlines and text-reordering characters become escapes (``\\n``, ``\\x1b``,
    ``\\u202e``), so no value can start a line of its own, colour a terminal or forge an
    annotation. Ordinary text, accents and emoji are kept as they are."""
    text = str(value)
    return _UNPRINTABLE.sub(_escaped, text) if _UNPRINTABLE.search(text) else text


def iso(epoch: float | None) -> str | None:
    """An instant as ISO 8601 in UTC (``2026-11-22T20:19:00Z``); None stays None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


def number(value: Any) -> str:
    """A measured value as people read it in evidence, the same in the terminal, reports
    and incidents: four significant digits; ``-`` for none; NaN and infinities as such."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f"{value:.4g}"


def delta(change: float, *, percent: bool = False) -> str:
    """A signed change as people read it in evidence: ``-0.0405``, ``+12.5%``. The same
    four significant digits as ``number``, so a change between two values shown apart is
    never rounded to ``-0.0``."""
    if math.isnan(change) or math.isinf(change):
        return ("+" if change > 0 else "") + str(change) + ("%" if percent else "")
    return f"{change:+.4g}" + ("%" if percent else "")


def hold_text(held: float, hold: float, *, recovered: bool = False) -> str:
    """How far a breach got into its ``for:`` hold, the one phrasing of every output:
    ``breaching for 2m of its 5m hold``, or once the value came back,
    ``breached 2m of its 5m hold, then recovered``."""
    if recovered:
        return f"breached {format_duration(held)} of its {format_duration(hold)} hold, then recovered"
    return f"breaching for {format_duration(held)} of its {format_duration(hold)} hold"
