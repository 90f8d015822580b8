"""Schedule values that plans carry: cron expressions, times of day, weekdays, time zones.

Besides parsing and validation, :func:`next_local_time` finds the next instant a wall-clock time
comes round in a zone; other fire times belong to the workflows. The cron dialect is the
classic five fields (minute hour day-of-month month day-of-week) with ``*``, lists, ranges,
steps, month and day names, and the ``@hourly`` ... ``@yearly`` macros.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer, PlainValidator, WithJsonSchema


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: str = ""  # the i-th space-separated name stands for low + i


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, "jan feb mar apr may jun jul aug sep oct nov dec"),
    # 7 is also Sunday, as in every common cron
    _Field("day-of-week", 0, 7, "sun mon tue wed thu fri sat"),
)
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class CronSpec:
    """A parsed cron expression: the allowed values of each field (Sunday is 0)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool  # day-of-month was "*": cron then matches on weekdays alone
    any_weekday: bool  # day-of-week was "*": cron then matches on days alone


def _number(text: str, field: _Field) -> int:
    names = field.names.split()
    if text.lower() in names:
        return field.low + names.index(text.lower())
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f'{field.name} "{text}" is not a number')
    value = int(text)
    if not field.low <= value <= field.high:
        raise ValueError(f"{field.name} {value} out of range {field.low}-{field.high}")
    return value


def _parse_item(item: str, field: _Field) -> set[int]:
    if not item:
        raise ValueError(f"{field.name} has an empty list item")
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()):
            raise ValueError(f'{field.name} step "{step_text}" is not a number')
        step = int(step_text)
        if step < 1:
            raise ValueError(f"{field.name} step {step} must be at least 1")
    if base == "*":
        low, high = field.low, field.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _number(first, field), _number(last, field)
        if low > high:
            raise ValueError(f"{field.name} range {first}-{last} is reversed")
    else:
        low = _number(base, field)
        # "5/15" means "from 5 to the end, every 15", as in Vixie cron
        high = field.high if slash else low
    return set(range(low, high + 1, step))


def parse_cron(expression: str) -> CronSpec:
    """Parse a cron expression; raise ``ValueError`` naming the field and value at fault."""
    text = " ".join(expression.split())
    try:
        return _parse_fields(_MACROS.get(text.lower(), text))
    except ValueError as exc:
        raise ValueError(f'bad cron "{expression}": {exc}') from None


def _parse_fields(text: str) -> CronSpec:
    if text.startswith("@"):
        raise ValueError("unknown macro (use @hourly, @daily, @weekly, @monthly or @yearly)")
    parts = text.split(" ") if text else []
    if len(parts) != 5:
        names = " ".join(f.name for f in _FIELDS)
        raise ValueError(f"expected 5 fields ({names}), got {len(parts)}")
    values = [
        set().union(*(_parse_item(item, field) for item in part.split(",")))
        for part, field in zip(parts, _FIELDS, strict=True)
    ]
    minutes, hours, days, months, weekdays = values
    weekdays = {0 if day == 7 else day for day in weekdays}
    any_day, any_weekday = parts[2] == "*", parts[4] == "*"
    # with both day fields restricted cron fires on either, so only a day-only rule can be empty
    if any_weekday and not any(day <= _MONTH_DAYS[month - 1] for day in days for month in months):
        raise ValueError("never fires: no chosen month has the chosen days")
    return CronSpec(
        frozenset(minutes),
        frozenset(hours),
        frozenset(days),
        frozenset(months),
        frozenset(weekdays),
        any_day,
        any_weekday,
    )


def _check_cron(value: str) -> str:
    parse_cron(value)
    return " ".join(value.split())


Cron = Annotated[
    str,
    AfterValidator(_check_cron),
    WithJsonSchema({"type": "string", "description": "a 5-field cron expression or @daily etc."}),
]
"""A validated cron expression, kept as written (whitespace normalised)."""

_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_time_of_day(value: object) -> time:
    """Read ``"09:00"`` / ``"21:30"`` into a :class:`datetime.time`."""
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0)
    match = _TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        raise ValueError(f"bad time of day {shown}: use HH:MM from 00:00 to 23:59")
    return time(int(match.group(1)), int(match.group(2)))


TimeOfDay = Annotated[
    time,
    PlainValidator(parse_time_of_day),
    PlainSerializer(lambda value: value.strftime("%H:%M"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^([01]?\d|2[0-3]):[0-5]\d$"}),
]
"""A wall-clock time of day (``09:00``); a ``time`` in Python, ``HH:MM`` in JSON."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names in :meth:`datetime.date.weekday` order (Monday is 0)."""


def _check_weekday(value: object) -> str:
    if isinstance(value, str) and value.strip().lower() in WEEKDAYS:
        return value.strip().lower()
    shown = f'"{value}"' if isinstance(value, str) else repr(value)
    raise ValueError(f"bad weekday {shown}: use one of {', '.join(WEEKDAYS)}")


Weekday = Annotated[
    str,
    PlainValidator(_check_weekday),
    WithJsonSchema({"type": "string", "enum": list(WEEKDAYS)}),
]
"""A weekday name, ``mon`` ... ``sun``."""


def check_time_zone(value: object) -> str:
    """Return ``value`` if it names an IANA time zone, else raise ``ValueError``."""
    if not isinstance(value, str):
        raise ValueError(f"bad time zone {value!r}: use an IANA name like Europe/Paris")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # ValueError covers keys zoneinfo refuses outright, such as absolute paths
        raise ValueError(f'unknown time zone "{value}"') from None
    return value


TimeZoneName = Annotated[
    str,
    PlainValidator(check_time_zone),
    WithJsonSchema({"type": "string", "description": "an IANA time zone such as Asia/Shanghai"}),
]
"""An IANA time zone name that :mod:`zoneinfo` knows."""


def next_local_time(
    after: datetime, *, at: time, zone: str, weekdays: Sequence[str] | None = None
) -> datetime:
    """The first instant at or after ``after`` that reads ``at`` on a wall clock in ``zone``.

    Only days in ``weekdays`` (names from :data:`WEEKDAYS`, judged by the local date; ``None``
    means every day) count. A wall time that a spring-forward gap skips fires at the end of the
    gap (02:30 becomes 03:00 in New York); one that a fall-back repeats fires at its first
    occurrence. ``after`` must be aware; the result is in UTC. Raise ``ValueError`` on a naive
    ``after``, an unknown zone, a bad weekday name or an empty ``weekdays``.
    """
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError(f"after must be an aware datetime, got {after.isoformat()}")
    days = _weekday_numbers(weekdays)
    tz = zoneinfo.ZoneInfo(check_time_zone(zone))
    wall = at.replace(tzinfo=None, fold=0)
    start = after.astimezone(UTC)
    # from the day before: a gap can push a wall time past midnight into the local day of `after`;
    # the seven days after the local day of `after` hold every weekday and all come later
    first = start.astimezone(tz).date() - timedelta(days=1)
    for offset in range(9):
        day = first + timedelta(days=offset)
        if day.weekday() in days:
            fire = _wall_to_utc(datetime.combine(day, wall), tz)
            if fire >= start:
                return fire
    raise AssertionError("unreachable: every weekday occurs after the local day of `after`")


def zone_or(name: str | None, fallback: str) -> str:
    """``name`` if it is an IANA time zone that :mod:`zoneinfo` knows, else ``fallback``.

    For zones read from user profiles, which may be empty or wrong; ``fallback`` is returned
    as given, unchecked.
    """
    if name is None:
        return fallback
    try:
        return check_time_zone(name)
    except (ValueError, OSError):  # OSError: an unreadable zone file must not stop a journey
        return fallback


def _weekday_numbers(weekdays: Sequence[str] | None) -> frozenset[int]:
    if weekdays is None:
        return frozenset(range(7))
    if not weekdays:
        raise ValueError("weekdays is empty: the time would never come")
    return frozenset(WEEKDAYS.index(_check_weekday(day)) for day in weekdays)


def _wall_to_utc(local: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    """The UTC instant of naive wall time ``local`` in ``tz``; see :func:`next_local_time`."""
    # fold=0 picks the first of two repeated wall times
    first = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == local:
        return first
    # `local` falls in a gap: fold=0 and fold=1 apply the offsets either side of the transition,
    # landing on both sides of it; find the transition (whole seconds in tzdata) by bisection
    other = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    low, high = (min(first, other), max(first, other))
    low, high = low.replace(microsecond=0), high.replace(microsecond=0)
    # invariant: the wall clock at `low` is before `local`, at `high` after it
    while high - low > timedelta(seconds=1):
        middle = low + timedelta(seconds=(high - low) // timedelta(seconds=2))
        if middle.astimezone(tz).replace(tzinfo=None) > local:
            high = middle
        else:
            low = middle
    return high
