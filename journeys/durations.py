"""Durations and rates as plan files write them.

A duration is ``"90s"``, ``"15m"``, ``"2h30m"``, ``"1d"``, ``"1w"``, ``"500ms"`` (units may be
combined) or a whole number of seconds; in Python it is a
:class:`datetime.timedelta` and it serialises back to the compact string. A rate is
``"500/s"``, ``"30/m"``, ``"1000/h"`` or ``"100/15m"``: a count per duration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer, PlainValidator, WithJsonSchema

_UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
_PART = re.compile(r"(\d+)(ms|w|d|h|m|s)")
_WHOLE = re.compile(r"(?:\d+(?:ms|w|d|h|m|s))+")
_HINT = "use a number and a unit like 15m, 2h, 7d"


def parse_duration(value: object) -> timedelta:
    """Read a duration from a plan value; raise ``ValueError`` with a message for people."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError(f"bad duration {format_duration(value)}: must not be negative")
        return value
    # bool is an int subclass; `true` as a duration is always a mistake
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"bad duration {value}: must not be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"bad duration {value!r}: {_HINT}")
    text = value.strip()
    if not _WHOLE.fullmatch(text):
        raise ValueError(f'bad duration "{value}": {_HINT}')
    total = timedelta(0)
    seen: set[str] = set()
    for number, unit in _PART.findall(text):
        if unit in seen:
            raise ValueError(f'bad duration "{value}": unit {unit} appears twice')
        seen.add(unit)
        total += int(number) * _UNITS[unit]
    return total


def format_duration(value: timedelta) -> str:
    """The compact form of a duration (``2h30m``, ``14d``)."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    sign = "-" if millis < 0 else ""
    millis = abs(millis)
    parts: list[str] = []
    rest = millis
    # never weeks: "T-7d" and "14d" read better than "T-1w" and "2w"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def within(
    *,
    minimum: timedelta | None = None,
    maximum: timedelta | None = None,
    positive: bool = True,
) -> AfterValidator:
    """Bounds for a :data:`Duration`: ``Annotated[Duration, within(maximum=timedelta(days=365))]``.

    By default the duration must also be longer than zero.
    """

    def check(value: timedelta) -> timedelta:
        if positive and value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {format_duration(minimum)}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {format_duration(maximum)}")
        return value

    return AfterValidator(check)


_DURATION_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "pattern": r"^(\d+(ms|w|d|h|m|s))+$"},
            {"type": "integer", "minimum": 0},
        ],
        "description": "a duration: 90s, 15m, 2h30m, 1d, 1w, 500ms or whole seconds",
    }
)

Duration = Annotated[
    timedelta,
    PlainValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    _DURATION_SCHEMA,
]
"""A non-negative duration (``15m``); a ``timedelta`` in Python, a compact string in JSON."""

PositiveDuration = Annotated[Duration, within()]
"""A duration longer than zero."""


@dataclass(frozen=True)
class RateLimit:
    """``count`` events per ``per`` (a token bucket refilling ``count`` tokens each ``per``)."""

    count: int
    per: timedelta

    @property
    def per_second(self) -> float:
        """The sustained rate in events per second."""
        return self.count / self.per.total_seconds()

    def __str__(self) -> str:
        per = format_duration(self.per)
        # "1s" reads better as "500/s"; "15m" stays "100/15m"
        if per[0] == "1" and per[1:] in _UNITS:
            per = per[1:]
        return f"{self.count}/{per}"


_RATE = re.compile(r"(\d+)\s*/\s*(\S+)")
_RATE_HINT = "use a count per unit like 500/s, 30/m, 1000/h"


def parse_rate(value: object) -> RateLimit:
    """Read a rate (``"500/s"``, ``"100/15m"``); raise ``ValueError`` with a message for people."""
    if isinstance(value, RateLimit):
        return value
    if not isinstance(value, str):
        raise ValueError(f"bad rate {value!r}: {_RATE_HINT}")
    match = _RATE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f'bad rate "{value}": {_RATE_HINT}')
    count, unit = int(match.group(1)), match.group(2)
    try:
        per = parse_duration(unit if unit[0].isdigit() else f"1{unit}")
    except ValueError:
        raise ValueError(f'bad rate "{value}": {_RATE_HINT}') from None
    if count < 1:
        raise ValueError(f'bad rate "{value}": the count must be at least 1')
    if per <= timedelta(0):
        raise ValueError(f'bad rate "{value}": the period must be longer than 0s')
    return RateLimit(count, per)


Rate = Annotated[
    RateLimit,
    PlainValidator(parse_rate),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d+\s*/\s*(\d*(ms|w|d|h|m|s))+$",
            "description": "a rate: 500/s, 30/m, 1000/h, 100/15m",
        }
    ),
]
"""A rate limit such as ``500/s``; a :class:`RateLimit` in Python, a string in JSON."""
