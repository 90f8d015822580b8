"""Durations, rates, schedule values and the rule language, on their own."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from journeys.durations import (
    Duration,
    Rate,
    RateLimit,
    format_duration,
    parse_duration,
    parse_rate,
)
from journeys.plan.problems import problems_from_error
from journeys.rules import (
    AllOf,
    EventCondition,
    NotRule,
    RelativeDate,
    Rule,
    TagCondition,
    iter_conditions,
    parse_value,
)
from journeys.schedule import (
    Cron,
    TimeOfDay,
    TimeZoneName,
    Weekday,
    check_time_zone,
    parse_cron,
    parse_time_of_day,
)

# durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h30m", timedelta(hours=2, minutes=30)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("500ms", timedelta(milliseconds=500)),
        ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        (" 7d ", timedelta(days=7)),
        (0, timedelta(0)),
        (3600, timedelta(hours=1)),
        (timedelta(minutes=5), timedelta(minutes=5)),
    ],
)
def test_parse_duration(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3 days", 'bad duration "3 days": use a number and a unit like 15m, 2h, 7d'),
        ("", 'bad duration "": use a number and a unit like 15m, 2h, 7d'),
        ("15", 'bad duration "15": use a number and a unit like 15m, 2h, 7d'),
        ("1.5h", 'bad duration "1.5h": use a number and a unit like 15m, 2h, 7d'),
        ("-5m", 'bad duration "-5m": use a number and a unit like 15m, 2h, 7d'),
        ("1h1h", 'bad duration "1h1h": unit h appears twice'),
        (-5, "bad duration -5: must not be negative"),
        (True, "bad duration True: use a number and a unit like 15m, 2h, 7d"),
        (1.5, "bad duration 1.5: use a number and a unit like 15m, 2h, 7d"),
    ],
)
def test_bad_duration(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=2, minutes=30), "2h30m"),
        (timedelta(days=7), "7d"),
        (timedelta(days=365), "365d"),
        (timedelta(milliseconds=1500), "1s500ms"),
        (timedelta(minutes=-5), "-5m"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    if value >= timedelta(0):
        assert parse_duration(text) == value


class _Timing(BaseModel):
    wait: Duration
    rate: Rate


def test_duration_and_rate_fields_serialise_to_strings() -> None:
    model = _Timing.model_validate({"wait": "2h30m", "rate": "500/s"})
    assert model.wait == timedelta(hours=2, minutes=30)
    assert model.rate == RateLimit(500, timedelta(seconds=1))
    assert model.model_dump(mode="json") == {"wait": "2h30m", "rate": "500/s"}
    assert _Timing.model_validate_json(model.model_dump_json()) == model
    with pytest.raises(ValidationError) as caught:
        _Timing.model_validate({"wait": "soon", "rate": "lots"})
    assert [str(problem) for problem in problems_from_error(caught.value)] == [
        'wait: bad duration "soon": use a number and a unit like 15m, 2h, 7d',
        'rate: bad rate "lots": use a count per unit like 500/s, 30/m, 1000/h',
    ]


@pytest.mark.parametrize(
    ("text", "count", "per", "shown"),
    [
        ("500/s", 500, timedelta(seconds=1), "500/s"),
        ("30/m", 30, timedelta(minutes=1), "30/m"),
        ("1000/h", 1000, timedelta(hours=1), "1000/h"),
        ("5/d", 5, timedelta(days=1), "5/d"),
        ("100/15m", 100, timedelta(minutes=15), "100/15m"),
        ("10 / 1s", 10, timedelta(seconds=1), "10/s"),
    ],
)
def test_parse_rate(text: str, count: int, per: timedelta, shown: str) -> None:
    rate = parse_rate(text)
    assert (rate.count, rate.per, str(rate)) == (count, per, shown)
    assert parse_rate(str(rate)) == rate


def test_rate_per_second() -> None:
    assert parse_rate("30/m").per_second == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fast", 'bad rate "fast": use a count per unit like 500/s, 30/m, 1000/h'),
        ("500", 'bad rate "500": use a count per unit like 500/s, 30/m, 1000/h'),
        ("500/year", 'bad rate "500/year": use a count per unit like 500/s, 30/m, 1000/h'),
        ("0/s", 'bad rate "0/s": the count must be at least 1'),
        ("5/0s", 'bad rate "5/0s": the period must be longer than 0s'),
        (500, "bad rate 500: use a count per unit like 500/s, 30/m, 1000/h"),
    ],
)
def test_bad_rate(text: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rate(text)
    assert str(caught.value) == message


# schedule values


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "0 9 * * *",
        "0 9 * * mon-fri",
        "*/15 8-20 * * *",
        "0 0 1,15 * *",
        "30 21 * jan,jul SUN",
        "5/10 * * * *",
        "0 9 * * 7",
        "0 0 29 2 *",
        "0 0 31 * *",
        "0 12 31 2 mon",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
        "  0   9  *  *  * ",
    ],
)
def test_good_cron(expression: str) -> None:
    parse_cron(expression)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("61 * * * *", "minute 61 out of range 0-59"),
        ("0 24 * * *", "hour 24 out of range 0-23"),
        ("0 0 0 * *", "day-of-month 0 out of range 1-31"),
        ("0 0 * 13 *", "month 13 out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 out of range 0-7"),
        ("x * * * *", 'minute "x" is not a number'),
        ("0 0 * foo *", 'month "foo" is not a number'),
        ("0 0 * * fri-mon", "day-of-week range fri-mon is reversed"),
        ("*/0 * * * *", "minute step 0 must be at least 1"),
        ("*/x * * * *", 'minute step "x" is not a number'),
        ("1,,2 * * * *", "minute has an empty list item"),
        ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("* * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6"),
        ("", "expected 5 fields (minute hour day-of-month month day-of-week), got 0"),
        ("@reboot", "unknown macro (use @hourly, @daily, @weekly, @monthly or @yearly)"),
        ("0 0 30 2 *", "never fires: no chosen month has the chosen days"),
    ],
)
def test_bad_cron(expression: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_cron(expression)
    assert str(caught.value) == f'bad cron "{expression}": {reason}'


def test_cron_values() -> None:
    spec = parse_cron("*/20 9-11 * * mon,sun,7")
    assert spec.minutes == {0, 20, 40}
    assert spec.hours == {9, 10, 11}
    assert spec.weekdays == {0, 1}
    assert spec.any_day and not spec.any_weekday
    assert parse_cron("@daily") == parse_cron("0 0 * * *")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("09:00", time(9)), ("9:05", time(9, 5)), ("21:30", time(21, 30)), ("23:59", time(23, 59))],
)
def test_time_of_day(text: str, expected: time) -> None:
    assert parse_time_of_day(text) == expected


@pytest.mark.parametrize("text", ["24:00", "9", "09:60", "9am", "", "09:00:00"])
def test_bad_time_of_day(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_time_of_day(text)
    assert str(caught.value) == f'bad time of day "{text}": use HH:MM from 00:00 to 23:59'


def test_bad_time_of_day_number() -> None:
    with pytest.raises(ValueError, match=r"^bad time of day 1290: use HH:MM"):
        parse_time_of_day(1290)


class _When(BaseModel):
    cron: Cron
    at: TimeOfDay
    day: Weekday
    zone: TimeZoneName


def test_schedule_fields() -> None:
    model = _When.model_validate(
        {"cron": " 0  9 * * MON ", "at": "9:00", "day": "Tue", "zone": "Asia/Shanghai"}
    )
    assert model.cron == "0 9 * * MON"
    assert model.day == "tue"
    assert model.model_dump(mode="json") == {
        "cron": "0 9 * * MON",
        "at": "09:00",
        "day": "tue",
        "zone": "Asia/Shanghai",
    }
    with pytest.raises(ValidationError) as caught:
        _When.model_validate(
            {"cron": "0 9 * * funday", "at": "25:00", "day": "monday", "zone": "Mars/Olympus"}
        )
    assert [str(problem) for problem in problems_from_error(caught.value)] == [
        'cron: bad cron "0 9 * * funday": day-of-week "funday" is not a number',
        'at: bad time of day "25:00": use HH:MM from 00:00 to 23:59',
        'day: bad weekday "monday": use one of mon, tue, wed, thu, fri, sat, sun',
        'zone: unknown time zone "Mars/Olympus"',
    ]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires"])
def test_known_time_zones(zone: str) -> None:
    assert check_time_zone(zone) == zone


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "/etc/passwd", "Europe/../UTC", "utc/x"])
def test_unknown_time_zones(zone: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_time_zone(zone)
    assert str(caught.value) == f'unknown time zone "{zone}"'


# rules

RULE: TypeAdapter[Any] = TypeAdapter(Rule)


def rule_problems(data: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        RULE.validate_python(data)
    return [str(problem) for problem in problems_from_error(caught.value)]


def test_rule_tree_parses_into_typed_nodes() -> None:
    rule = RULE.validate_python(
        {
            "all": [
                {"tag": "city", "op": "in", "value": ["Beijing", "Shanghai"]},
                {"not": {"tag": "vip", "op": "eq", "value": True}},
                {
                    "any": [
                        {"tag": "last_seen", "op": "lt", "value": "T-7d"},
                        {
                            "event": "order_cancelled",
                            "where": {"reason": "price_too_low", "amount": {"gte": 100}},
                            "within": "30d",
                        },
                    ]
                },
            ]
        }
    )
    assert isinstance(rule, AllOf)
    assert isinstance(rule.all[1], NotRule)
    leaves = iter_conditions(rule)
    assert [type(leaf) for leaf in leaves] == [
        TagCondition,
        TagCondition,
        TagCondition,
        EventCondition,
    ]
    last_seen, behaviour = leaves[2], leaves[3]
    assert isinstance(last_seen, TagCondition)
    assert last_seen.value == RelativeDate(-timedelta(days=7))
    assert isinstance(behaviour, EventCondition)
    assert behaviour.count.gte == 1 and behaviour.count.lte is None
    assert behaviour.where is not None
    assert behaviour.where["reason"].root == {"eq": "price_too_low"}
    dumped = RULE.dump_python(rule, mode="json", by_alias=True)
    assert dumped["all"][1] == {"not": {"tag": "vip", "op": "eq", "value": True}}
    assert dumped["all"][2]["any"][0]["value"] == "T-7d"
    assert RULE.validate_json(json.dumps(dumped)) == rule


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("T-7d", RelativeDate(-timedelta(days=7))),
        ("T+1d", RelativeDate(timedelta(days=1))),
        ("T-1d12h", RelativeDate(-timedelta(hours=36))),
        ("T-shirt", "T-shirt"),
        ("2025-06-01", date(2025, 6, 1)),
        ("2025-06-01T09:00:00Z", datetime(2025, 6, 1, 9, tzinfo=UTC)),
        (42, 42),
        (2.5, 2.5),
        (False, False),
        (None, None),
        (["a", "T+2h"], ["a", RelativeDate(timedelta(hours=2))]),
    ],
)
def test_rule_values(text: object, expected: object) -> None:
    assert parse_value(text) == expected


def test_relative_date_text() -> None:
    assert str(RelativeDate(-timedelta(days=7))) == "T-7d"
    assert str(RelativeDate(timedelta(hours=36))) == "T+1d12h"


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (
            {"tag": "age", "op": "between", "value": [30]},
            "tag.value: op between needs a list [low, high]",
        ),
        (
            {"tag": "age", "op": "between", "value": [30, 18]},
            "tag.value: op between needs low <= high, got [30, 18]",
        ),
        (
            {"tag": "seen", "op": "between", "value": ["T-1d", "T-7d"]},
            "tag.value: op between needs low <= high, got [T-1d, T-7d]",
        ),
        (
            {"tag": "seen", "op": "between", "value": [1, "T-7d"]},
            "tag.value: op between needs two values of the same kind, got [1, T-7d]",
        ),
        (
            {"tag": "name", "op": "between", "value": ["a", "z"]},
            'tag.value: op between needs numbers, date-times or relative dates, got ["a", "z"]',
        ),
        ({"tag": "city", "op": "in", "value": []}, "tag.value: op in needs a non-empty list"),
        (
            {"tag": "city", "op": "not_in", "value": "x"},
            "tag.value: op not_in needs a non-empty list",
        ),
        (
            {"tag": "vip", "op": "exists", "value": 1},
            "tag.value: op exists takes true, false or nothing, got 1",
        ),
        (
            {"tag": "age", "op": "gt", "value": True},
            "tag.value: op gt needs a number, date-time or relative date like T-7d, got true",
        ),
        ({"tag": "city", "op": "eq"}, "tag.value: op eq needs a value"),
        (
            {"tag": "city", "op": "eq", "value": ["a"]},
            "tag.value: op eq needs a single value, got a list",
        ),
        (
            {"tag": "city", "op": "equals", "value": "a"},
            "tag.op: must be one of: eq, ne, gt, gte, lt, lte, in, not_in, contains, exists, "
            'between, anniversary; got "equals"',
        ),
        (
            {"tag": "joined", "op": "gt", "value": "2025-01-01T00:00:00"},
            "tag.value: date-time 2025-01-01T00:00:00 needs a UTC offset, "
            "like 2025-06-01T09:00:00+08:00",
        ),
        (
            {"tag": "x", "op": "eq", "value": {"a": 1}},
            "tag.value: must be a single value or a list, not a mapping",
        ),
        (
            {"tag": "Bad Name", "op": "exists"},
            'tag: bad tag name "Bad Name": use letters, digits, "_", ".", ":" and "-", '
            "starting with a letter or _ (at most 100)",
        ),
        ({"all": []}, "all: must not be empty"),
        ({"any": "x"}, "any: must be a list"),
        (
            {"tag": "a", "event": "b"},
            "a rule needs exactly one of the keys: all, any, not, tag, event",
        ),
        ({}, "a rule needs exactly one of the keys: all, any, not, tag, event"),
        ({"not": {"tag": "a", "op": "exists", "colour": 1}}, "not.tag.colour: unknown field"),
        ({"event": "login", "count": {"gte": -1}}, "event.count.gte: must be at least 0"),
        ({"event": "login", "count": {}}, "event.count: needs gte and/or lte"),
        ({"event": "login", "within": "0s"}, "event.within: must be longer than 0s"),
        (
            {"event": "login", "where": {"os": {}}},
            "event.where.os: needs at least one operator, e.g. {gte: 10}",
        ),
        (
            {"event": "login", "where": {"n": {"lt": "many"}}},
            'event.where.n: op lt needs a number, date-time or relative date like T-7d, got "many"',
        ),
    ],
)
def test_rule_static_checks(rule: dict[str, Any], problem: str) -> None:
    assert rule_problems(rule) == [problem]


def test_rule_errors_deep_in_a_tree_keep_readable_paths() -> None:
    assert rule_problems(
        {
            "any": [
                {"tag": "ok", "op": "exists"},
                {"all": [{"not": {"tag": "age", "op": "lte", "value": "old"}}]},
                {"event": "e", "count": {"gte": 3, "lte": 1}},
            ]
        }
    ) == [
        "any.1.all.0.not.tag.value: op lte needs a number, date-time or relative date like T-7d, "
        'got "old"',
        "any.2.event.count: gte 3 is more than lte 1",
    ]
