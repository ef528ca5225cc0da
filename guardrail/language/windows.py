"""Change windows: when a rollout may not deploy. They are checked before it starts,
before every wave and when a wave is approved.

Three forms, each inclusive of its start and exclusive of its end:

- weekly, one span: ``"Fri 15:00-Mon 08:00"``, ``"Sat-Sun"`` (whole days);
- daily, on some days: ``"Mon-Fri 22:00-23:00"`` (each of those days, 22:00 to 23:00),
  ``"Sat 10:00-12:00"``; a range past midnight (``"Mon-Fri 22:00-02:00"``) ends the next day;
- dated: ``"2026-12-24-2026-12-27"`` (whole days) or ``"2026-12-24 00:00 - 2026-12-27 00:00"``.
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
_DAILY = re.compile(
    r"^(?P<d1>[A-Za-z]{3})(?:\s*-\s*(?P<d2>[A-Za-z]{3}))?\s+(?P<t1>\d{1,2}:\d{2})\s*-\s*(?P<t2>\d{1,2}:\d{2})$"
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
    daily: tuple[frozenset[int], int, int] | None = None  # weekdays (0 = Monday), seconds of the day: start, end

    def contains(self, moment: datetime) -> bool:
        """``moment`` must be timezone-aware and already in the windows' timezone."""
        if self.daily is not None:
            days, start, end = self.daily
            second = moment.hour * 3600 + moment.minute * 60 + moment.second
            if start < end:
                return moment.weekday() in days and start <= second < end
            # past midnight: the evening of a listed day, or the early morning after one
            return (moment.weekday() in days and second >= start) or ((moment.weekday() - 1) % 7 in days
                                                                       and second < end)
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
    if m := _DAILY.match(value):
        d1, d2 = m["d1"].lower(), (m["d2"] or m["d1"]).lower()
        if d1 not in _DAYS or d2 not in _DAYS:
            raise ValueError(f"window {value!r}: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun")
        first, last = _DAYS.index(d1), _DAYS.index(d2)
        days = frozenset((first + i) % 7 for i in range((last - first) % 7 + 1))  # Fri-Mon wraps the weekend
        try:
            start, end = _minutes(m["t1"], 0), _minutes(m["t2"], 0)
        except ValueError as exc:
            raise ValueError(f"window {value!r}: {exc}") from None
        if start == end:
            raise ValueError(f"window {value!r} is empty: it ends when it starts")
        return Window(value, daily=(days, start, end))
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
    raise ValueError('expected a window like "Fri 15:00-Mon 08:00", "Mon-Fri 22:00-23:00" or '
                     f'"2026-12-24 00:00 - 2026-12-27 00:00", got {value!r}')


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
