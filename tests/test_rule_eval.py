"""Rule evaluation for one user: operators, absent values, dates, entry props, behaviours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import TypeAdapter

from journeys.rule_eval import (
    ALL_HISTORY,
    EventFact,
    UserFacts,
    evaluate,
    event_names,
    lookback,
    property_matches,
    reads_entry,
)
from journeys.rules import PropertyFilter, Rule

RULE: TypeAdapter[Any] = TypeAdapter(Rule)
WHERE: TypeAdapter[Any] = TypeAdapter(PropertyFilter)
NOW = datetime(2025, 6, 8, 10, 0, tzinfo=UTC)

ATTRS: dict[str, Any] = {
    "age": 30,
    "score": 4.5,
    "vip": True,
    "city": "Beijing",
    "zip": "10001",
    "tags": ["gold", "beta", 3],
    "bio": "Loves cats",
    "signup": "2025-06-01",
    "last_seen": "2025-06-05T08:00:00Z",
    "naive_seen": "2025-06-07 23:30",
    "created": datetime(2025, 1, 1, tzinfo=UTC),
    "bad_date": "2025-13-45",
    "profile": {"k": 1},
    "nothing": None,
}
ENTRY: dict[str, Any] = {"reason": "price_too_low", "amount": 120}
EVENTS = (
    EventFact(
        "order_cancelled", NOW - timedelta(days=1), {"reason": "price_too_low", "amount": 150}
    ),
    EventFact(
        "order_cancelled", NOW - timedelta(days=10), {"reason": "price_too_low", "amount": 80}
    ),
    EventFact("order_cancelled", NOW - timedelta(days=40), {"reason": "other", "amount": 500}),
    EventFact("page_view", NOW - timedelta(hours=2), {"path": "/pricing"}),
    EventFact("page_view", NOW - timedelta(hours=3), {"path": "/pricing"}),
    EventFact("page_view", NOW + timedelta(hours=1), {"path": "/later"}),
)
FACTS = UserFacts(attrs=ATTRS, events=EVENTS, entry=ENTRY)


def tag(name: str, op: str, value: Any = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"tag": name, "op": op}
    if value is not None:
        rule["value"] = value
    return rule


CASES: list[tuple[str, dict[str, Any], bool]] = [
    # eq / ne
    ("eq number", tag("age", "eq", 30), True),
    ("eq int attr float operand", tag("age", "eq", 30.0), True),
    ("eq number attr string operand", tag("age", "eq", "30"), False),
    ("eq numeric string attr number operand", tag("zip", "eq", 10001), False),
    ("eq string", tag("city", "eq", "Beijing"), True),
    ("eq string is case-sensitive", tag("city", "eq", "beijing"), False),
    ("eq bool", tag("vip", "eq", True), True),
    ("eq bool attr number operand", tag("vip", "eq", 1), False),
    ("eq number attr bool operand", tag("age", "eq", True), False),
    ("eq mapping attr", tag("profile", "eq", "x"), False),
    ("ne string", tag("city", "ne", "Shanghai"), True),
    ("ne same string", tag("city", "ne", "Beijing"), False),
    ("ne kind mismatch", tag("city", "ne", 5), False),
    ("ne absent", tag("missing", "ne", "x"), False),
    # order
    ("gt", tag("age", "gt", 29), True),
    ("gt equal", tag("age", "gt", 30), False),
    ("gte equal", tag("age", "gte", 30), True),
    ("lt float", tag("score", "lt", 5), True),
    ("lte float equal", tag("score", "lte", 4.5), True),
    ("gt string attr", tag("city", "gt", 3), False),
    ("gt bool attr", tag("vip", "gt", 0), False),
    ("between inclusive high", tag("age", "between", [18, 30]), True),
    ("between inclusive low", tag("age", "between", [30, 40]), True),
    ("between outside", tag("age", "between", [31, 40]), False),
    ("between dates", tag("signup", "between", ["2025-05-01", "2025-06-01"]), True),
    ("between string attr", tag("city", "between", [1, 5]), False),
    # in / not_in
    ("in", tag("city", "in", ["Beijing", "Shanghai"]), True),
    ("in miss", tag("city", "in", ["Shanghai"]), False),
    ("in numbers", tag("age", "in", [29, 30.0]), True),
    ("not_in", tag("city", "not_in", ["Shanghai", "Shenzhen"]), True),
    ("not_in hit", tag("city", "not_in", ["Beijing"]), False),
    ("not_in absent", tag("missing", "not_in", ["x"]), False),
    ("not_in with a mismatched item", tag("city", "not_in", ["Shanghai", 5]), False),
    # contains
    ("contains list element", tag("tags", "contains", "gold"), True),
    ("contains list number", tag("tags", "contains", 3.0), True),
    ("contains list miss", tag("tags", "contains", "silver"), False),
    ("contains substring", tag("bio", "contains", "cats"), True),
    ("contains substring case", tag("bio", "contains", "Cats"), False),
    ("contains number attr", tag("age", "contains", 3), False),
    ("contains absent", tag("missing", "contains", "x"), False),
    # exists and absent values
    ("exists", tag("city", "exists"), True),
    ("exists true", tag("city", "exists", True), True),
    ("exists false on present", tag("city", "exists", False), False),
    ("exists absent", tag("missing", "exists"), False),
    ("exists false absent", tag("missing", "exists", False), True),
    ("exists null", tag("nothing", "exists"), False),
    ("exists false null", tag("nothing", "exists", False), True),
    ("eq null", tag("nothing", "eq", "x"), False),
    ("eq absent", tag("missing", "eq", "x"), False),
    ("gt absent", tag("missing", "gt", 1), False),
    ("in absent", tag("missing", "in", ["x"]), False),
    ("between absent", tag("missing", "between", [1, 2]), False),
    ("not of a leaf on absent is true", {"not": tag("missing", "eq", "x")}, True),
    # dates and relative dates (now is 2025-06-08T10:00Z)
    ("date-time gt T-7d", tag("last_seen", "gt", "T-7d"), True),
    ("date-time lt T-7d", tag("last_seen", "lt", "T-7d"), False),
    ("date-time gte T-3d by instant", tag("last_seen", "gte", "T-3d"), False),
    ("date-time lte T+1d", tag("last_seen", "lte", "T+1d"), True),
    ("date gte T-7d by date", tag("signup", "gte", "T-7d"), True),
    ("date gt T-7d by date", tag("signup", "gt", "T-7d"), False),
    ("date between relative", tag("signup", "between", ["T-10d", "T-1d"]), True),
    ("date-time eq date", tag("last_seen", "eq", "2025-06-05"), True),
    ("date-time eq same instant", tag("last_seen", "eq", "2025-06-05T16:00:00+08:00"), True),
    ("date-time ne other date", tag("last_seen", "ne", "2025-06-06"), True),
    ("naive date-time is utc", tag("naive_seen", "lt", "2025-06-08T00:00:00+01:00"), False),
    ("naive date-time is utc 2", tag("naive_seen", "gt", "2025-06-07T23:00:00Z"), True),
    ("datetime object attr", tag("created", "lt", "2025-01-02"), True),
    ("unparseable date attr", tag("bad_date", "eq", "2025-06-01"), False),
    ("string attr vs relative date", tag("city", "gt", "T-1d"), False),
    ("number attr vs date", tag("age", "lt", "2025-06-01"), False),
    ("date string attr vs string operand", tag("signup", "eq", "June"), False),
    # entry properties
    ("entry eq", tag("entry.reason", "eq", "price_too_low"), True),
    ("entry gte", tag("entry.amount", "gte", 100), True),
    ("entry absent", tag("entry.coupon", "exists", False), True),
    ("entry key is not an attribute", tag("reason", "exists"), False),
    ("attribute is not an entry key", tag("entry.city", "exists"), False),
    # nesting
    (
        "all with any",
        {"all": [tag("age", "gte", 18), {"any": [tag("city", "eq", "X"), tag("vip", "eq", True)]}]},
        True,
    ),
    ("all with not", {"all": [tag("age", "gte", 18), {"not": tag("vip", "eq", True)}]}, False),
    (
        "any over not any",
        {
            "any": [
                {"not": {"any": [tag("city", "eq", "X"), tag("city", "eq", "Y")]}},
                tag("missing", "eq", 1),
            ]
        },
        True,
    ),
    ("not not", {"not": {"not": tag("city", "eq", "Beijing")}}, True),
    ("any all false", {"any": [tag("age", "lt", 18), tag("city", "eq", "X")]}, False),
    # behaviours
    ("event ever", {"event": "order_cancelled"}, True),
    ("event within", {"event": "order_cancelled", "within": "7d"}, True),
    (
        "event within count",
        {"event": "order_cancelled", "within": "7d", "count": {"gte": 2}},
        False,
    ),
    (
        "event wider window",
        {"event": "order_cancelled", "within": "30d", "count": {"gte": 2}},
        True,
    ),
    (
        "event where",
        {
            "event": "order_cancelled",
            "within": "30d",
            "where": {"reason": "price_too_low", "amount": {"gte": 100}},
        },
        True,
    ),
    (
        "event where count",
        {
            "event": "order_cancelled",
            "within": "30d",
            "where": {"reason": "price_too_low", "amount": {"gte": 100}},
            "count": {"gte": 2},
        },
        False,
    ),
    (
        "event where list is in",
        {
            "event": "order_cancelled",
            "where": {"reason": ["price_too_low", "other"]},
            "count": {"gte": 3},
        },
        True,
    ),
    (
        "event where range",
        {
            "event": "order_cancelled",
            "where": {"amount": {"gte": 100, "lt": 200}},
            "count": {"lte": 1},
        },
        True,
    ),
    (
        "event where absent prop",
        {"event": "order_cancelled", "where": {"coupon": {"exists": True}}},
        False,
    ),
    ("never done", {"event": "signed_up", "count": {"lte": 0}}, True),
    ("done so not never", {"event": "order_cancelled", "count": {"lte": 0}}, False),
    (
        "window excludes future",
        {"event": "page_view", "within": "1d", "count": {"gte": 2, "lte": 2}},
        True,
    ),
    ("no window counts all", {"event": "page_view", "count": {"gte": 3}}, True),
    (
        "window boundary included",
        {"event": "order_cancelled", "within": "10d", "count": {"gte": 2}},
        True,
    ),
    ("not event", {"not": {"event": "order_cancelled", "within": "12h"}}, True),
]


@pytest.mark.parametrize(
    ("rule", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_evaluate(rule: dict[str, Any], expected: bool) -> None:
    assert evaluate(RULE.validate_python(rule), FACTS, now=NOW) is expected


def test_evaluate_without_events_or_entry() -> None:
    facts = UserFacts(attrs={"age": 20})
    assert evaluate(RULE.validate_python({"event": "x", "count": {"lte": 0}}), facts, now=NOW)
    assert evaluate(RULE.validate_python(tag("entry.reason", "exists", False)), facts, now=NOW)


def test_now_in_another_zone_is_the_same_instant() -> None:
    rule = RULE.validate_python(tag("last_seen", "gte", "T-3d"))
    shanghai = NOW.astimezone(timezone(timedelta(hours=8)))
    assert evaluate(rule, FACTS, now=shanghai) is evaluate(rule, FACTS, now=NOW)


def test_naive_now_is_rejected() -> None:
    rule = RULE.validate_python(tag("age", "eq", 30))
    with pytest.raises(ValueError, match="now must be an aware datetime"):
        evaluate(rule, FACTS, now=datetime(2025, 6, 8))
    with pytest.raises(ValueError, match="now must be an aware datetime"):
        property_matches(None, {}, now=datetime(2025, 6, 8))


@pytest.mark.parametrize(
    ("where", "props", "expected"),
    [
        (None, {}, True),
        ({"reason": "price_too_low"}, {"reason": "price_too_low", "x": 1}, True),
        ({"reason": "price_too_low"}, {}, False),
        (
            {"reason": "price_too_low", "amount": {"gte": 100}},
            {"reason": "price_too_low", "amount": 99},
            False,
        ),
        ({"amount": {"gte": 100, "lt": 200}}, {"amount": 199.5}, True),
        ({"amount": {"gte": 100, "lt": 200}}, {"amount": 200}, False),
        ({"at": {"gt": "T-1h"}}, {"at": "2025-06-08T09:30:00Z"}, True),
        ({"coupon": {"exists": False}}, {"coupon": None}, True),
    ],
)
def test_property_matches(
    where: dict[str, Any] | None, props: dict[str, Any], expected: bool
) -> None:
    parsed = None if where is None else WHERE.validate_python(where)
    assert property_matches(parsed, props, now=NOW) is expected


def test_event_names_and_lookback() -> None:
    rule = RULE.validate_python(
        {
            "all": [
                tag("age", "gte", 18),
                {"event": "order_cancelled", "within": "30d"},
                {
                    "not": {
                        "any": [
                            {"event": "page_view", "within": "2h"},
                            {"event": "order_cancelled"},
                        ]
                    }
                },
            ]
        }
    )
    assert event_names(rule) == {"order_cancelled", "page_view"}
    assert lookback(rule) == ALL_HISTORY
    windowed = RULE.validate_python(
        {"any": [{"event": "a", "within": "30d"}, {"not": {"event": "b", "within": "45d"}}]}
    )
    assert lookback(windowed) == timedelta(days=45)
    tags_only = RULE.validate_python(tag("age", "gte", 18))
    assert event_names(tags_only) == set()
    assert lookback(tags_only) is None


def test_reads_entry_finds_entry_tags_anywhere_in_the_tree() -> None:
    nested = {"all": [tag("age", "gte", 18), {"not": {"any": [tag("entry.reason", "exists")]}}]}
    assert reads_entry(RULE.validate_python(nested))
    assert not reads_entry(RULE.validate_python(tag("age", "gte", 18)))
    # a behaviour's property filter reads that event, not the entry event
    behaviour = {"event": "order_cancelled", "where": {"reason": "price_too_low"}}
    assert not reads_entry(RULE.validate_python(behaviour))
    assert not reads_entry(RULE.validate_python(tag("entry_reason", "exists")))  # no dot
