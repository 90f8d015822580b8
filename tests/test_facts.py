"""What rules read on a page: entry event props for ``entry.*`` tags, loaded only when a rule
reads them and the page has event entries (real PostgreSQL and Redis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as aioredis
from pydantic import TypeAdapter

from activities.db import queries
from activities.db.pool import DbPool
from activities.journey.facts import admit, entry_props, load_facts
from journeys.rules import Rule
from tests.journey_kit import seed_profiles

RULE: TypeAdapter[Any] = TypeAdapter(Rule)
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
REASON_IS_PRICE = RULE.validate_python(
    {"tag": "entry.reason", "op": "eq", "value": "price_too_low"}
)
GOLD = RULE.validate_python({"tag": "tier", "op": "eq", "value": "gold"})


class QueryLog:
    """The pool, recording the SQL of every ``fetch`` made through it."""

    def __init__(self, pool: DbPool) -> None:
        self._pool = pool
        self.fetched: list[str] = []

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.fetched.append(sql)
        return list(await self._pool.fetch(sql, *args))

    def entry_queries(self) -> int:
        return self.fetched.count(queries.ENTRIES_PROPS)

    def as_pool(self) -> DbPool:
        return cast(DbPool, self)


async def store_entries(pool: DbPool, run_id: str, entries: dict[tuple[str, int], Any]) -> None:
    """journey_entries rows as ``admit_entries`` writes them: (user, number) -> props."""
    keys = sorted(entries)
    await pool.execute(
        queries.ENTRIES_INSERT,
        run_id,
        "0/in0",
        [user for user, _ in keys],
        [number for _, number in keys],
        [None] * len(keys),
        [entries[key] for key in keys],
        NOW,
    )


def new_run() -> str:
    return f"plan/facts-{uuid.uuid4().hex[:8]}/v1/k"


async def test_entry_props_are_those_of_each_users_entry_number(pool: DbPool) -> None:
    run = new_run()
    await store_entries(
        pool,
        run,
        {
            ("a", 1): {"reason": "price_too_low", "order_id": "o-1"},
            ("a", 2): {"reason": "dont_trust", "order_id": "o-2"},
            ("b", 1): {},
        },
    )
    await store_entries(pool, new_run(), {("c", 1): {"reason": "elsewhere"}})  # another run
    log = QueryLog(pool)

    got = await entry_props(log.as_pool(), run, {"a": 2, "b": 1, "c": 1, "d": 3})
    assert got == {"a": {"reason": "dont_trust", "order_id": "o-2"}, "b": {}}
    assert await entry_props(pool, run, {"a": 1}) == {
        "a": {"reason": "price_too_low", "order_id": "o-1"}
    }
    # audience entries (number 0) have no entry event: no query at all
    assert await entry_props(log.as_pool(), run, {"a": 0, "b": 0}) == {}
    assert await entry_props(log.as_pool(), run, {}) == {}
    assert log.entry_queries() == 1


async def test_load_facts_reads_entry_props_only_when_a_rule_needs_them(pool: DbPool) -> None:
    run = new_run()
    fa, fb, fc = users = [f"facts-{uuid.uuid4().hex[:6]}-{n}" for n in "abc"]
    await store_entries(
        pool, run, {(fa, 1): {"reason": "price_too_low"}, (fb, 2): {"reason": "data_wipe_hassle"}}
    )
    await seed_profiles(pool, {fa: {"attrs": {"tier": "gold"}}})
    entries = {fa: 1, fb: 2, fc: 0}  # fc came in with the audience
    log = QueryLog(pool)

    facts = await load_facts(
        log.as_pool(), users, rules=[GOLD, REASON_IS_PRICE], now=NOW, entries=entries, run_id=run
    )
    assert {u: dict(f.entry) for u, f in facts.items()} == {
        fa: {"reason": "price_too_low"},
        fb: {"reason": "data_wipe_hassle"},
        fc: {},
    }
    assert facts[fa].attrs["tier"] == "gold"
    assert log.entry_queries() == 1

    # no rule reads entry.*: the page pays no entry query
    facts = await load_facts(
        log.as_pool(), users, rules=[GOLD], now=NOW, entries=entries, run_id=run
    )
    assert all(f.entry == {} for f in facts.values())
    # a blast page (every entry number 0): none either
    blast = dict.fromkeys(users, 0)
    facts = await load_facts(
        log.as_pool(), users, rules=[REASON_IS_PRICE], now=NOW, entries=blast, run_id=run
    )
    assert all(f.entry == {} for f in facts.values())
    # without entries or a run, entry.* reads nothing (as for any other absent value)
    facts = await load_facts(log.as_pool(), users, rules=[REASON_IS_PRICE], now=NOW)
    assert all(f.entry == {} for f in facts.values())
    assert log.entry_queries() == 1
    assert log.fetched.count(queries.USERS_BY_IDS) == 4  # profiles once per call, as before


async def test_an_exit_rule_on_the_entry_event_removes_the_user(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    run = new_run()
    await store_entries(
        pool,
        run,
        {
            ("xa", 1): {"reason": "fraud_suspected"},
            ("xb", 1): {"reason": "price_too_low"},
            ("xc", 1): {"reason": "fraud_suspected"},
            ("xc", 2): {"reason": "price_too_low"},  # xc came back for another order
        },
    )
    fraud = RULE.validate_python({"tag": "entry.reason", "op": "eq", "value": "fraud_suspected"})
    exited = f"exited-{uuid.uuid4().hex[:8]}"
    try:
        kept, gone = await admit(
            redis,
            pool,
            users=["xa", "xb", "xc", "xd"],
            exited_key=exited,
            exit_rules=[fraud],
            now=NOW,
            entries={"xa": 1, "xb": 1, "xc": 2, "xd": 0},
            run_id=run,
        )
        members: list[Any] = await redis.zrange(exited, 0, -1)
    finally:
        await redis.delete(exited)

    assert (kept, gone) == (["xb", "xc", "xd"], 1)
    assert members == [b"xa"]  # later nodes skip xa without evaluating again
