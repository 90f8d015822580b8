"""Wall-clock fire times in a zone: weekdays, zones, DST gaps and overlaps."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from journeys.schedule import next_local_time, zone_or

SHANGHAI = "Asia/Shanghai"  # UTC+8 all year
NEW_YORK = "America/New_York"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_later_the_same_day() -> None:
    # 2025-06-06 00:30Z is 08:30 in Shanghai
    fire = next_local_time(utc(2025, 6, 6, 0, 30), at=time(9), zone=SHANGHAI)
    assert fire == utc(2025, 6, 6, 1, 0)
    assert fire.tzinfo is UTC


def test_already_past_today_goes_to_tomorrow() -> None:
    # 09:30 in Shanghai
    fire = next_local_time(utc(2025, 6, 6, 1, 30), at=time(9), zone=SHANGHAI)
    assert fire == utc(2025, 6, 7, 1, 0)


def test_exactly_at_the_time_fires_now() -> None:
    assert next_local_time(utc(2025, 6, 6, 1, 0), at=time(9), zone=SHANGHAI) == utc(2025, 6, 6, 1)
    just_after = utc(2025, 6, 6, 1, 0) + timedelta(microseconds=1)
    assert next_local_time(just_after, at=time(9), zone=SHANGHAI) == utc(2025, 6, 7, 1)


def test_local_day_differs_from_the_utc_day() -> None:
    # 2025-06-05 20:00Z is already 04:00 on the 6th in Shanghai
    fire = next_local_time(utc(2025, 6, 5, 20), at=time(9), zone=SHANGHAI)
    assert fire == utc(2025, 6, 6, 1)


def test_any_aware_after_is_accepted() -> None:
    after = datetime(2025, 6, 6, 8, 30, tzinfo=timezone(timedelta(hours=8)))
    assert next_local_time(after, at=time(9), zone=SHANGHAI) == utc(2025, 6, 6, 1)


def test_only_monday_from_a_friday() -> None:
    # Friday 2025-06-06, 08:00 in Shanghai; the next Monday is the 9th
    fire = next_local_time(utc(2025, 6, 6, 0), at=time(9), zone=SHANGHAI, weekdays=["mon"])
    assert fire == utc(2025, 6, 9, 1)


def test_weekday_filter_allows_today() -> None:
    fire = next_local_time(utc(2025, 6, 6, 0), at=time(9), zone=SHANGHAI, weekdays=["fri", "mon"])
    assert fire == utc(2025, 6, 6, 1)


def test_weekday_filter_after_todays_time_wraps_a_week() -> None:
    # Friday 10:00 in Shanghai: this Friday's 09:00 has gone
    fire = next_local_time(utc(2025, 6, 6, 2), at=time(9), zone=SHANGHAI, weekdays=["FRI"])
    assert fire == utc(2025, 6, 13, 1)


def test_weekday_is_the_local_day() -> None:
    # Sunday 2025-06-08 23:00Z is Monday 07:00 in Shanghai
    fire = next_local_time(utc(2025, 6, 8, 23), at=time(9), zone=SHANGHAI, weekdays=["mon"])
    assert fire == utc(2025, 6, 9, 1)


def test_same_wall_time_in_three_zones() -> None:
    # 08:00 in Shanghai, 02:00 in Berlin, 17:00 the day before in Los Angeles
    after = utc(2025, 6, 5, 0)
    fires = {
        zone: next_local_time(after, at=time(9), zone=zone)
        for zone in ("Asia/Shanghai", "Europe/Berlin", "America/Los_Angeles")
    }
    assert fires == {
        "Asia/Shanghai": utc(2025, 6, 5, 1),  # UTC+8
        "Europe/Berlin": utc(2025, 6, 5, 7),  # CEST, UTC+2
        "America/Los_Angeles": utc(2025, 6, 5, 16),  # PDT, UTC-7
    }


def test_spring_forward_gap_fires_at_the_end_of_the_gap() -> None:
    # 2025-03-09: New York clocks jump from 02:00 EST to 03:00 EDT (07:00Z)
    fire = next_local_time(utc(2025, 3, 9, 0), at=time(2, 30), zone=NEW_YORK)
    assert fire == utc(2025, 3, 9, 7)
    assert fire.astimezone(ZoneInfo(NEW_YORK)).time() == time(3)


def test_spring_forward_gap_then_back_to_normal() -> None:
    # just after the gap: the next 02:30 exists, on the 10th, in EDT
    fire = next_local_time(utc(2025, 3, 9, 7, 0, 1), at=time(2, 30), zone=NEW_YORK)
    assert fire == utc(2025, 3, 10, 6, 30)


def test_spring_forward_day_outside_the_gap() -> None:
    # 09:00 on the gap day is plain EDT
    assert next_local_time(utc(2025, 3, 9, 0), at=time(9), zone=NEW_YORK) == utc(2025, 3, 9, 13)


def test_fall_back_overlap_fires_at_the_first_occurrence() -> None:
    # 2025-11-02: 01:00-02:00 happens twice, first in EDT (05:00Z-06:00Z), then in EST
    fire = next_local_time(utc(2025, 11, 2, 0), at=time(1, 30), zone=NEW_YORK)
    assert fire == utc(2025, 11, 2, 5, 30)


def test_fall_back_overlap_after_the_first_occurrence_waits_a_day() -> None:
    # between the two 01:30s: the second one does not fire again
    fire = next_local_time(utc(2025, 11, 2, 6), at=time(1, 30), zone=NEW_YORK)
    assert fire == utc(2025, 11, 3, 6, 30)


def test_naive_after_is_rejected() -> None:
    with pytest.raises(ValueError, match="after must be an aware datetime"):
        next_local_time(datetime(2025, 6, 6, 9), at=time(9), zone=SHANGHAI)


@pytest.mark.parametrize(
    ("zone", "weekdays", "message"),
    [
        ("Mars/Olympus", None, 'unknown time zone "Mars/Olympus"'),
        (SHANGHAI, ["monday"], 'bad weekday "monday"'),
        (SHANGHAI, [], "weekdays is empty"),
    ],
)
def test_bad_arguments_are_rejected(zone: str, weekdays: list[str] | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        next_local_time(utc(2025, 6, 6), at=time(9), zone=zone, weekdays=weekdays)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("UTC", "UTC"),
        (None, "Asia/Shanghai"),
        ("", "Asia/Shanghai"),
        ("Mars/Olympus", "Asia/Shanghai"),
        ("europe/berlin", "Asia/Shanghai"),
        ("Europe/../UTC", "Asia/Shanghai"),
        ("/etc/passwd", "Asia/Shanghai"),
        ("zone.tab", "Asia/Shanghai"),
        ("+08:00", "Asia/Shanghai"),
    ],
)
def test_zone_or(name: str | None, expected: str) -> None:
    assert zone_or(name, "Asia/Shanghai") == expected
