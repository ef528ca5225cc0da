"""Change windows: when a rollout may not start.

Two forms, both inclusive of their start and exclusive of their end:

- weekly: ``"Fri 15:00-Mon 08:00"``, ``"Sat-Sun"`` (whole days), ``"Mon-Fri 22:00-23:00"``
  is *not* supported: write one span per day instead, so nothing is ambiguous;
- dated: ``"2026-12-24-2026-12-27"`` or ``"2026-12-24 18:00-2026-12-27 08:00"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from guardrail.text import long_text

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKLY = re.compile(
    r"^(?P<d1>[A-Za-z]{3})(?:\s+(?P<t1>\d{1,2}:\d{2}))?\s*-\s*(?P<d2>[A-Za-z]{3})(?:\s+(?P<t2>\d{1,2}:\d{2}))?$"
)
_DATED = re.compile(
    r"^(?P<a>\d{4}-\d{2}-\d{2})(?:\s+(?P<at>\d{1,2}:\d{2}))?\s*-\s*(?P<b>\d{4}-\d{2}-\d{2})(?:\s+(?P<bt>\d{1,2}:\d{2}))?$"
)
WEEK = 7 * 86400
FIRST_YEAR, LAST_YEAR = 2000, 2999
"""Dated windows lie in these years: anything else is a typo (and year 9999 plus a day
is past what a datetime can hold)."""
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*$")


@dataclass(frozen=True)
class Window:
    text: str
    weekly: tuple[int, int] | None = None  # seconds since Monday 00:00, start and end
    dated: tuple[datetime, datetime] | None = None  # naive, in the window's timezone

    def contains(self, moment: datetime) -> bool:
        """``moment`` must be timezone-aware and already in the windows' timezone."""
        if self.dated is not None:
            naive = moment.replace(tzinfo=None)
            return self.dated[0] <= naive < self.dated[1]
        start, end = self.weekly
        second = moment.weekday() * 86400 + moment.hour * 3600 + moment.minute * 60 + moment.second
        if start < end:
            return start <= second < end
        return second >= start or second < end  # wraps over the weekend


def _minutes(text: str | None, default: int) -> int:
    if text is None:
        return default
    hours, minutes = (int(x) for x in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ValueError(f"{text!r} is not a time of day")
    return hours * 3600 + minutes * 60


def parse_window(text: str) -> Window:
    value = str(text).strip()
    if m := _DATED.match(value):
        for day in (m["a"], m["b"]):
            if not FIRST_YEAR <= int(day[:4]) <= LAST_YEAR:
                raise ValueError(f"window {value!r}: the year {day[:4]} is out of range ({FIRST_YEAR}-{LAST_YEAR})")
        try:
            a = datetime.fromisoformat(m["a"]) + timedelta(seconds=_minutes(m["at"], 0))
            b = datetime.fromisoformat(m["b"]) + timedelta(seconds=_minutes(m["bt"], 86400))
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"window {value!r}: {exc}") from None
        if b <= a:
            raise ValueError(f"window {value!r} ends before it starts")
        return Window(value, dated=(a, b))
    if m := _WEEKLY.match(value):
        d1, d2 = m["d1"].lower(), m["d2"].lower()
        if d1 not in _DAYS or d2 not in _DAYS:
            raise ValueError(f"window {value!r}: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun")
        try:
            start = _DAYS.index(d1) * 86400 + _minutes(m["t1"], 0)
            end = _DAYS.index(d2) * 86400 + _minutes(m["t2"], 86400)
        except ValueError as exc:
            raise ValueError(f"window {value!r}: {exc}") from None
        return Window(value, weekly=(start % WEEK, end % WEEK if end != WEEK else WEEK))
    raise ValueError(f'expected a window like "Fri 15:00-Mon 08:00" or "2026-12-24-2026-12-27", got {value!r}')


def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` names. A name is letters, digits and ``_+-`` parts joined
    by ``/``; a folder of the zone database (``Europe``) is not a zone."""
    try:
        if len(name) > 64 or not _ZONE_NAME.match(name):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # IsADirectoryError for "Europe"
        raise ValueError(f"unknown time zone {long_text(name)} (use an IANA name such as Europe/Paris or UTC)") from None


def frozen_by(deny: list[str], timezone: str, at: float) -> str | None:
    """The first deny window containing epoch time ``at``, or None."""
    moment = datetime.fromtimestamp(at, zone(timezone))
    for text in deny:
        if parse_window(text).contains(moment):
            return text
    return None
