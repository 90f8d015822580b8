"""Rules compiled to SQL select exactly the users the in-memory evaluator says they hold for:
hypothesis draws rules, profiles (missing and null attributes, date-like and odd text, lists)
and events, and the real PostgreSQL answer is compared with :func:`journeys.rule_eval.evaluate`
for every user."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from activities.db.pool import DbPool
from journeys.rule_eval import EventFact, UserFacts, evaluate
from journeys.rule_sql import segment_query
from journeys.rules import TAG_OPS, Rule

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RULE: TypeAdapter[Rule] = TypeAdapter(Rule)
TAGS = ["a", "b", "email", "entry.reason"]

DATE_TEXTS = [
    "2026-11-30", "2026-12-01", "2026-12-02", "2026-02-30", "2026-13-01",
    "2026-12-01T10:00:00+08:00", "2026-12-01 09:00", "2026-11-28T23:59:59.5Z",
    "2026-12-01T12:00", "2026-12-01T25:00", "2026-12-01T10:00+15:00", "12/01/2026",
    "1990-12-06", "1990-12-07", "2024-02-29", "1999-02-28", "2000-03-01",
]  # fmt: skip
text = st.text(max_size=3).filter(lambda s: "\x00" not in s)
data_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.25, 2.0, 1e20]),
    st.sampled_from(DATE_TEXTS),
    st.sampled_from(DATE_TEXTS),  # twice: date reading is where SQL and Python differ most
    st.sampled_from(["a", "ab", "B", ""]),
    text,
)
data_value = st.one_of(data_scalar, st.lists(data_scalar, max_size=3))

DATES = ["2026-11-28", "2026-11-30", "2026-12-01", "2026-12-01T06:00:00+00:00", "T-3d", "T+1h"]
ordered = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.25, 2.0]),
    st.sampled_from(DATES),
    st.sampled_from(DATES),
)
words = ["a", "ab", "", "a\x00", "B", "col@example.com", "@"]
operand = st.one_of(ordered, st.sampled_from(DATES), st.booleans(), st.sampled_from(words), text)


@st.composite
def leaf_tests(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(TAG_OPS))
    if op in ("gt", "gte", "lt", "lte"):
        return {"op": op, "value": draw(ordered)}
    if op in ("in", "not_in"):
        return {"op": op, "value": draw(st.lists(operand, min_size=1, max_size=3))}
    if op == "exists":
        return {"op": op, "value": draw(st.sampled_from([None, True, False]))}
    if op == "anniversary":
        return {"op": op, "value": draw(st.sampled_from(["day", "week", "month"]))}
    if op == "between":
        # each pool is in ascending order, so two draws sorted by position are [low, high]
        pools: list[list[Any]] = [[-2, 0, 0.5, 3], ["2026-11-29", "2026-12-01", "T+2d"]]
        pool = draw(st.sampled_from(pools))
        first, second = sorted(
            draw(st.lists(st.sampled_from(range(len(pool))), min_size=2, max_size=2))
        )
        return {"op": op, "value": [pool[first], pool[second]]}
    return {"op": op, "value": draw(operand)}


leaf_tag = st.builds(lambda tag, test: {"tag": tag, **test}, st.sampled_from(TAGS), leaf_tests())


@st.composite
def leaf_event(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {"event": draw(st.sampled_from(["x", "y"]))}
    if draw(st.booleans()):
        test = draw(leaf_tests())
        rule["where"] = {"p": {test["op"]: test["value"]}}
    if draw(st.booleans()):
        rule["within"] = f"{draw(st.integers(1, 6))}d"
    gte = draw(st.integers(0, 2))
    rule["count"] = (
        {"gte": gte, "lte": gte + draw(st.integers(0, 2))} if draw(st.booleans()) else {"gte": gte}
    )
    return rule


rules = st.recursive(
    st.one_of(leaf_tag, leaf_event()),
    lambda children: st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, children),
    ),
    max_leaves=5,
)

profile = st.fixed_dictionaries(
    {},
    optional={"a": data_value, "b": data_value, "email": data_value},
)
event = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["x", "y"]),
        "hours": st.integers(-24 * 8, 24 * 2),
        "props": st.fixed_dictionaries({}, optional={"p": data_value}),
    }
)
user = st.fixed_dictionaries(
    {
        "attrs": profile,
        "email": st.sampled_from([None, "col@example.com"]),
        "events": st.lists(event, max_size=3),
    }
)


def valid_rule(raw: dict[str, Any]) -> Rule | None:
    try:
        return RULE.validate_python(raw)
    except ValueError:
        return None


NOWS = [
    NOW,  # a Tuesday: its week runs from 30 November to 6 December
    datetime(2027, 2, 28, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")),  # no 29 February in 2027
    datetime(2028, 2, 29, 23, 30, tzinfo=ZoneInfo("America/New_York")),  # 1 March in UTC
]


async def compare(
    pool: DbPool,
    users: list[dict[str, Any]],
    raw_rules: list[dict[str, Any]],
    now: datetime = NOW,
) -> None:
    tag = uuid.uuid4().hex[:10]
    ids = [f"rs-{tag}-{n}" for n in range(len(users))]
    await pool.executemany(
        "INSERT INTO users (user_id, email, attrs) VALUES ($1, $2, $3)",
        [(uid, u["email"], u["attrs"]) for uid, u in zip(ids, users, strict=True)],
    )
    rows = [
        (uid, e["name"], now + timedelta(hours=e["hours"]), e["props"])
        for uid, u in zip(ids, users, strict=True)
        for e in u["events"]
    ]
    if rows:
        await pool.executemany(
            "INSERT INTO events (user_id, name, ts, props) VALUES ($1, $2, $3, $4)", rows
        )
    facts = {}
    for uid, u in zip(ids, users, strict=True):
        attrs = dict(u["attrs"])
        if u["email"] is not None:
            attrs.setdefault("email", u["email"])
        happened = [
            EventFact(e["name"], now + timedelta(hours=e["hours"]), e["props"]) for e in u["events"]
        ]
        facts[uid] = UserFacts(attrs=attrs, events=happened)
    async with pool.acquire() as conn:
        # far from UTC, so a comparison that leaned on the session's zone would show it
        await conn.execute("SET TIME ZONE 'Pacific/Kiritimati'")
        try:
            for raw in raw_rules:
                rule = valid_rule(raw)
                if rule is None:
                    continue
                query, params = segment_query(rule, now=now)
                found = await conn.fetch(
                    f"{query} AND u.user_id = ANY(${len(params) + 1}::text[])", *params, ids
                )
                from_sql = {r["user_id"] for r in found}
                in_memory = {uid for uid in ids if evaluate(rule, facts[uid], now=now)}
                assert from_sql == in_memory, (raw, query)
        finally:
            await conn.execute("RESET TIME ZONE")


async def test_compiled_rules_select_what_the_evaluator_selects(pool: DbPool) -> None:
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=200,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        st.lists(user, min_size=1, max_size=8),
        st.lists(rules, min_size=1, max_size=8),
        st.sampled_from(NOWS),
    )
    def check(users: list[dict[str, Any]], raw_rules: list[dict[str, Any]], now: datetime) -> None:
        asyncio.run_coroutine_threadsafe(compare(pool, users, raw_rules, now), loop).result()

    await asyncio.to_thread(check)


@pytest.mark.parametrize(
    "value",
    ["'; DROP TABLE users; --", "a\x00b", "Ünïcødé ☃", "x" * 100_000, '"quoted" \\ back'],
)
async def test_hostile_values_are_data_never_sql(pool: DbPool, value: str) -> None:
    uid = f"rh-{uuid.uuid4().hex[:10]}"
    stored = value.replace("\x00", "")
    await pool.execute("INSERT INTO users (user_id, attrs) VALUES ($1, $2)", uid, {"name": stored})
    for raw, expected in (
        ({"tag": "name", "op": "eq", "value": value}, "\x00" not in value),
        ({"tag": "name", "op": "contains", "value": value[:50]}, "\x00" not in value[:50]),
        ({"tag": "name", "op": "ne", "value": value}, "\x00" in value),
    ):
        query, params = segment_query(RULE.validate_python(raw), now=NOW)
        assert value not in query  # every value is a parameter
        rows = await pool.fetch(f"{query} AND u.user_id = $%d" % (len(params) + 1), *params, uid)
        assert bool(rows) is expected, raw
    assert await pool.fetchval("SELECT count(*) FROM users WHERE user_id = $1", uid) == 1


KNOWN = [
    ({"tag": "a", "op": "anniversary", "value": "day"}, {"a": "1990-12-01"}, True),
    ({"tag": "a", "op": "anniversary", "value": "week"}, {"a": "1990-12-06"}, True),
    ({"tag": "a", "op": "anniversary", "value": "week"}, {"a": "1990-12-07"}, False),
    ({"tag": "a", "op": "anniversary", "value": "month"}, {"a": "2000-12-31T23:00-05:00"}, False),
    # (rule, attrs, holds): the cases the semantics were decided on, each in both evaluators
    ({"tag": "a", "op": "eq", "value": "2026-12-01"}, {"a": "2026-12-01T12:00"}, True),
    ({"tag": "a", "op": "eq", "value": "2026-12-01"}, {"a": "2026-12-01T23:30-05:00"}, False),
    ({"tag": "a", "op": "lt", "value": "T-1d"}, {"a": "2026-11-29"}, True),
    ({"tag": "a", "op": "gte", "value": 3}, {"a": "3"}, False),
    ({"tag": "a", "op": "eq", "value": 3}, {"a": 3.0}, True),
    ({"not": {"tag": "a", "op": "eq", "value": "x"}}, {}, True),
    ({"not": {"tag": "a", "op": "ne", "value": "x"}}, {"a": None}, True),
    ({"tag": "a", "op": "contains", "value": 2}, {"a": [1, 2]}, True),
    ({"tag": "a", "op": "contains", "value": "b"}, {"a": "abc"}, True),
    ({"tag": "a", "op": "gt", "value": "2026-01-01"}, {"a": "2026-02-30"}, False),
    ({"tag": "email", "op": "exists"}, {}, True),  # the profile column stands in
]


@pytest.mark.parametrize(("raw", "attrs", "holds"), KNOWN)
async def test_decided_cases_hold_in_both_whatever_the_session_zone(
    pool: DbPool, raw: dict[str, Any], attrs: dict[str, Any], holds: bool
) -> None:
    uid = f"rk-{uuid.uuid4().hex[:10]}"
    await pool.execute(
        "INSERT INTO users (user_id, email, attrs) VALUES ($1, 'k@example.com', $2)", uid, attrs
    )
    rule = RULE.validate_python(raw)
    facts = UserFacts(attrs={**attrs} | ({} if "email" in attrs else {"email": "k@example.com"}))
    assert evaluate(rule, facts, now=NOW) is holds
    query, params = segment_query(rule, now=NOW)
    async with pool.acquire() as conn:
        for zone in ("UTC", "Pacific/Kiritimati", "America/Adak"):
            await conn.execute(f"SET TIME ZONE '{zone}'")
            rows = await conn.fetch(f"{query} AND u.user_id = ${len(params) + 1}", *params, uid)
            assert bool(rows) is holds, (raw, zone)
        await conn.execute("RESET TIME ZONE")


def test_a_29_february_is_kept_on_28_february_in_a_year_without_one() -> None:
    from datetime import date

    from journeys.rule_eval import anniversary_days

    assert anniversary_days("day", date(2027, 2, 28)) == {"02-28", "02-29"}
    assert anniversary_days("day", date(2028, 2, 28)) == {"02-28"}
    assert anniversary_days("day", date(2028, 2, 29)) == {"02-29"}
    week = anniversary_days("week", date(2026, 12, 31))  # Monday 28 December to Sunday 3 January
    assert week == {"12-28", "12-29", "12-30", "12-31", "01-01", "01-02", "01-03"}
