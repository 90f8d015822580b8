"""Audiences by rule and by query, materialised for real: a segment compiled to SQL, an SQL
audience held by the database's own enforcement (the journeys_reader role, a read-only
transaction, a statement timeout), and set operations over them, end to end in a run."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from pydantic import TypeAdapter

from activities.audience import materialise as materialising
from activities.audience.materialise import AudienceUnavailable, materialise
from activities.db.pool import DbPool
from journeys.names import run_audience_key
from journeys.plan.audience import Audience, SqlAudience
from tests.journey_runner import JourneyKit

AUDIENCE: TypeAdapter[Audience] = TypeAdapter(Audience)


async def seed(pool: DbPool, tag: str) -> list[str]:
    """Four users: two in Beijing (one VIP), one in Shanghai, one with no city."""
    people = [("bj-vip", {"city": "Beijing", "vip": True}), ("bj", {"city": "Beijing"}),
              ("sh", {"city": "Shanghai"}), ("none", {})]  # fmt: skip
    ids = [f"as-{tag}-{name}" for name, _ in people]
    await pool.executemany(
        "INSERT INTO users (user_id, attrs) VALUES ($1, $2)",
        [(uid, attrs) for uid, (_, attrs) in zip(ids, people, strict=True)],
    )
    return ids


async def members(redis: aioredis.Redis, run_id: str, shards: int) -> set[str]:
    found: set[str] = set()
    for k in range(shards):
        page: list[bytes] = await redis.zrange(run_audience_key(run_id, k), 0, -1)  # type: ignore[assignment]
        found |= {m.decode() for m in page}
    return found


async def resolve(redis: aioredis.Redis, pool: DbPool, raw: object) -> set[str]:
    run_id = f"test/{uuid.uuid4().hex[:8]}"

    def target(k: int) -> str:
        return run_audience_key(run_id, k)

    audience = raw if isinstance(raw, SqlAudience) else AUDIENCE.validate_python(raw)
    await materialise(redis, pool, audience=audience, run_id=run_id, shards=4, target=target)
    return await members(redis, run_id, 4)


async def test_segments_sql_and_set_operations_select_the_right_users(
    redis: aioredis.Redis, pool: DbPool
) -> None:
    tag = uuid.uuid4().hex[:8]
    bj_vip, bj, sh, _ = await seed(pool, tag)
    beijing = {"source": "segment", "rule": {"tag": "city", "op": "eq", "value": "Beijing"}}
    ours = {"source": "sql", "query": f"SELECT user_id FROM users WHERE user_id LIKE 'as-{tag}-%'"}
    not_vip = {"source": "segment", "rule": {"not": {"tag": "vip", "op": "eq", "value": True}}}
    assert await resolve(redis, pool, {"source": "intersect", "of": [beijing, ours]}) == {
        bj_vip,
        bj,
    }
    both = {"source": "intersect", "of": [not_vip, ours]}
    assert await resolve(redis, pool, both) == {bj, sh, f"as-{tag}-none"}
    assert await resolve(redis, pool, {"source": "difference", "of": [ours, beijing]}) == {
        sh,
        f"as-{tag}-none",
    }


def unchecked(query: str) -> SqlAudience:
    """An SQL audience as if its query had got past the grammar check."""
    return SqlAudience.model_construct(source="sql", query=query, mode="snapshot")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("SELECT email FROM users", "returns no user_id column"),
        ("SELECT body::text AS user_id FROM plan_versions", "may only read users and events"),
        ("SELECT user_id FROM users WHERE nextval('events_seq_seq') > 0", "may only read users"),
        ("SELECT user_id FROM users, pg_sleep(5)", "was stopped"),
    ],
)
async def test_the_database_refuses_what_gets_past_the_check(
    redis: aioredis.Redis,
    pool: DbPool,
    monkeypatch: pytest.MonkeyPatch,
    query: str,
    reason: str,
) -> None:
    monkeypatch.setattr(materialising, "SQL_AUDIENCE_TIMEOUT", timedelta(milliseconds=300))
    await seed(pool, uuid.uuid4().hex[:8])  # rows, so every WHERE is evaluated
    with pytest.raises(AudienceUnavailable) as refused:
        await resolve(redis, pool, unchecked(query))
    assert reason in str(refused.value), str(refused.value)


async def test_a_segment_plan_runs_end_to_end(journey: JourneyKit) -> None:
    tag = uuid.uuid4().hex[:8]
    profiles = {
        f"sg-{tag}-a": {"attrs": {"tier": "gold", "orders": 3, "batch": tag}},
        f"sg-{tag}-b": {"attrs": {"tier": "gold", "orders": 0, "batch": tag}},
        f"sg-{tag}-c": {"attrs": {"tier": "silver", "orders": 5, "batch": tag}},
    }
    rule = {
        "all": [
            {"tag": "tier", "op": "eq", "value": "gold"},
            {"tag": "orders", "op": "gte", "value": 1},
            {"tag": "batch", "op": "eq", "value": tag},  # this test's users only
        ]
    }
    body = {
        "audience": {"source": "segment", "rule": rule},
        "steps": {"hello": {"type": "send", "channel": "push", "template": "hello"}},
    }
    outcome = await journey.run(body, users=None, profiles=profiles)
    assert sorted(outcome.users) == [f"sg-{tag}-a"]
    assert outcome.users[f"sg-{tag}-a"].messages == ["hello"]


async def test_a_birthday_segment_counts_today_in_the_plans_zone(
    redis: aioredis.Redis, pool: DbPool
) -> None:
    # UTC+14 and UTC-11 are a day apart at every moment: today differs between them
    ahead = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    user = f"bd-{uuid.uuid4().hex[:8]}"
    await pool.execute(
        "INSERT INTO users (user_id, attrs) VALUES ($1, $2)",
        user,
        {"birthday": f"1990-{ahead.month:02d}-{ahead.day:02d}", "batch": user},
    )
    rule = {
        "all": [
            {"tag": "birthday", "op": "anniversary", "value": "day"},
            {"tag": "batch", "op": "eq", "value": user},
        ]
    }
    audience = AUDIENCE.validate_python({"source": "segment", "rule": rule})
    for zone, expected in (("Pacific/Kiritimati", {user}), ("Pacific/Pago_Pago", set())):
        run_id = f"test/{uuid.uuid4().hex[:8]}"

        def target(k: int, run_id: str = run_id) -> str:
            return run_audience_key(run_id, k)

        await materialise(
            redis, pool, audience=audience, run_id=run_id, shards=2, target=target, zone=zone
        )
        assert await members(redis, run_id, 2) == expected, zone
