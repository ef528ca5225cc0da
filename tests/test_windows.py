"""``guardrail.language.windows``: change freezes, weekly and dated, in a time zone."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from guardrail.language.windows import frozen_by, parse_window, zone

UTC = ZoneInfo("UTC")


def at(text: str, tz: str = "UTC") -> datetime:
    """``"2026-01-09 15:00"`` (a Friday) as an aware datetime in ``tz``."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


def epoch(text: str, tz: str = "UTC") -> float:
    return at(text, tz).timestamp()


# 2026-01-05 is a Monday; 2026-01-09 a Friday; 2026-01-10/11 the weekend.


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        ("2026-01-09 14:59", False),  # Friday before the freeze
        ("2026-01-09 15:00", True),   # start is inclusive
        ("2026-01-09 23:59", True),
        ("2026-01-10 12:00", True),   # Saturday
        ("2026-01-11 23:59", True),   # Sunday night
        ("2026-01-12 00:00", True),   # Monday midnight: the span wraps over the week's end
        ("2026-01-12 07:59", True),
        ("2026-01-12 08:00", False),  # end is exclusive
        ("2026-01-07 12:00", False),  # Wednesday
    ],
)
def test_a_weekly_span_that_wraps_the_weekend(moment, inside):
    window = parse_window("Fri 15:00-Mon 08:00")
    assert window.weekly == (4 * 86400 + 15 * 3600, 8 * 3600)
    assert window.contains(at(moment)) is inside


@pytest.mark.parametrize(
    ("moment", "inside"),
    [("2026-01-09 23:59", False), ("2026-01-10 00:00", True), ("2026-01-11 23:59", True), ("2026-01-12 00:00", False)],
)
def test_whole_days(moment, inside):
    window = parse_window("Sat-Sun")
    assert window.contains(at(moment)) is inside


def test_a_span_within_one_day_and_a_whole_week():
    window = parse_window("wed 09:30 - wed 17:00")  # case and spaces are forgiven
    assert window.contains(at("2026-01-07 09:30"))
    assert not window.contains(at("2026-01-07 17:00"))
    assert not window.contains(at("2026-01-08 12:00"))
    assert parse_window("Mon 00:00-Mon 24:00").contains(at("2026-01-05 23:59"))
    week = parse_window("Sun-Sat")
    assert all(week.contains(at(f"2026-01-{day:02d} 12:00")) for day in range(5, 12))


def test_dated_spans_include_their_last_day():
    window = parse_window("2026-12-24-2026-12-27")
    assert window.dated == (datetime(2026, 12, 24), datetime(2026, 12, 28))
    assert not window.contains(at("2026-12-23 23:59"))
    assert window.contains(at("2026-12-24 00:00"))
    assert window.contains(at("2026-12-27 23:59"))
    assert not window.contains(at("2026-12-28 00:00"))


def test_dated_spans_with_times():
    window = parse_window("2026-12-24 18:00-2026-12-27 08:00")
    assert not window.contains(at("2026-12-24 17:59"))
    assert window.contains(at("2026-12-24 18:00"))
    assert not window.contains(at("2026-12-27 08:00"))


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        ("2026-01-05 21:59", False),  # Monday
        ("2026-01-05 22:00", True),
        ("2026-01-05 22:59", True),
        ("2026-01-05 23:00", False),
        ("2026-01-09 22:30", True),   # Friday
        ("2026-01-10 22:30", False),  # Saturday
        ("2026-01-11 22:30", False),  # Sunday
    ],
)
def test_a_daily_range_on_weekdays(moment, inside):
    window = parse_window("Mon-Fri 22:00-23:00")
    assert window.daily == (frozenset(range(5)), 22 * 3600, 23 * 3600)
    assert window.contains(at(moment)) is inside


def test_a_daily_range_past_midnight_and_day_ranges_that_wrap():
    night = parse_window("Fri-Mon 22:00-02:00")  # Fri, Sat, Sun, Mon nights
    assert night.daily[0] == frozenset({4, 5, 6, 0})
    assert night.contains(at("2026-01-09 23:00"))       # Friday night
    assert night.contains(at("2026-01-10 01:59"))       # ...until Saturday 02:00
    assert night.contains(at("2026-01-13 01:00"))       # Monday night runs into Tuesday
    assert not night.contains(at("2026-01-13 22:00"))   # Tuesday evening
    assert not night.contains(at("2026-01-09 01:00"))   # Friday early morning: Thursday is not listed
    one = parse_window("sat 10:00 - 12:00")
    assert one.contains(at("2026-01-10 11:00")) and not one.contains(at("2026-01-17 12:00"))


def test_a_dated_freeze_written_with_times_and_spaces():
    window = parse_window("2026-12-24 00:00 - 2026-12-27 00:00")
    assert window.dated == (datetime(2026, 12, 24), datetime(2026, 12, 27))
    assert window.contains(at("2026-12-26 23:59")) and not window.contains(at("2026-12-27 00:00"))
    assert frozen_by(["2026-12-24 00:00 - 2026-12-27 00:00"], "Asia/Tokyo",
                     epoch("2026-12-23 15:30")) == "2026-12-24 00:00 - 2026-12-27 00:00"  # 00:30 in Tokyo


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Friday 15:00-Mon 08:00", 'expected a window like "Fri 15:00-Mon 08:00"'),
        ("Fri 15:00-Mon 25:00", "window 'Fri 15:00-Mon 25:00': '25:00' is not a time of day"),
        ("Fri 15:61-Mon 08:00", "'15:61' is not a time of day"),
        ("Frx 15:00-Mon 08:00", "days are Mon, Tue, Wed, Thu, Fri, Sat, Sun"),
        ("2026-12-27-2026-12-24", "ends before it starts"),
        ("2026-13-01-2026-12-24", "month must be in 1..12"),
        ("Mon-Fri 22:00-22:00", "is empty: it ends when it starts"),
        ("Mon-Fry 22:00-23:00", "days are Mon, Tue"),
        ("Mon-Fri 22:00-25:00", "'25:00' is not a time of day"),
        ("Mon-Fri 22:00-", "expected a window like"),
        ("weekends", "expected a window like"),
    ],
)
def test_bad_windows_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_window(text)


def test_frozen_by_uses_the_plan_time_zone():
    deny = ["Fri 15:00-Mon 08:00"]
    # 14:30 UTC on a winter Friday is 15:30 in Paris (UTC+1): frozen there, not in UTC.
    moment = epoch("2026-01-09 14:30")
    assert frozen_by(deny, "Europe/Paris", moment) == "Fri 15:00-Mon 08:00"
    assert frozen_by(deny, "UTC", moment) is None
    # In summer Paris is UTC+2: 13:30 UTC is already 15:30 there.
    assert frozen_by(deny, "Europe/Paris", epoch("2026-07-10 13:30")) == "Fri 15:00-Mon 08:00"
    assert frozen_by(deny, "Europe/Paris", epoch("2026-07-10 12:30")) is None
    # Monday 07:30 in Tokyo is still Sunday in UTC: frozen in both, for different reasons.
    monday_morning_tokyo = epoch("2026-01-12 07:30", "Asia/Tokyo")
    assert frozen_by(deny, "Asia/Tokyo", monday_morning_tokyo) == deny[0]
    assert frozen_by(deny, "UTC", monday_morning_tokyo) == deny[0]
    assert frozen_by(deny, "Asia/Tokyo", epoch("2026-01-12 08:00", "Asia/Tokyo")) is None


def test_frozen_by_dated_spans_in_a_time_zone_and_the_first_match():
    deny = ["Sat-Sun", "2026-12-24-2026-12-27"]
    christmas_eve_tokyo = epoch("2026-12-24 00:30", "Asia/Tokyo")  # still the 23rd in UTC
    assert frozen_by(deny, "Asia/Tokyo", christmas_eve_tokyo) == "2026-12-24-2026-12-27"
    assert frozen_by(deny, "UTC", christmas_eve_tokyo) is None
    saturday_christmas = epoch("2026-12-26 12:00")
    assert frozen_by(deny, "UTC", saturday_christmas) == "Sat-Sun"  # the first window that matches
    assert frozen_by([], "UTC", saturday_christmas) is None


def test_zone():
    assert zone("Europe/Paris") == ZoneInfo("Europe/Paris")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus_Mons'"):
        zone("Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("../etc/passwd")
    assert datetime.fromtimestamp(0, zone("UTC")) == datetime(1970, 1, 1, tzinfo=timezone.utc)
