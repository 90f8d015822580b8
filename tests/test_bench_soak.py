"""The soak bench's helpers: recurring users are keyed by their n-th event, keys group by kind."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import redis.asyncio as aioredis

from bench.events import steady, user_of
from bench.soak_probes import key_shape, redis_by_shape

RUN = "bench-events-ab12cd:v1:20261203T1200"


async def test_recurring_users_are_keyed_by_their_nth_event() -> None:
    sent: list[list[str]] = []

    async def send(batch: list[tuple[str, datetime]]) -> None:
        sent.append([user for user, _ in batch])

    # 40 events/s for 0.3 s: 6 ticks of 2 events, cycling through 5 users
    due = await steady(send, RUN, duration=timedelta(seconds=0.3), rate=40, users=5)
    users = [user for batch in sent for user in batch]
    assert users == [user_of(RUN, n % 5) for n in range(12)]
    assert len(due) == 12
    assert f"{user_of(RUN, 0)}:3" in due and f"{user_of(RUN, 1)}:3" in due
    assert f"{user_of(RUN, 2)}:3" not in due  # the third user's third event is number 13


async def test_fresh_users_are_keyed_by_user() -> None:
    async def send(batch: list[tuple[str, datetime]]) -> None:
        del batch

    due = await steady(send, RUN, duration=timedelta(seconds=0.1), rate=40)
    assert sorted(due) == [user_of(RUN, n) for n in range(4)]


def test_key_shapes_hide_runs_users_and_shards() -> None:
    user = user_of(RUN, 42)
    assert key_shape(f"jny:run:{RUN}:{{s3}}:c:hello.sent", run_id=RUN) == (
        "jny:run:RUN:{sN}:c:hello.sent"
    )
    assert key_shape(f"jny:hist:{user}", run_id=RUN) == "jny:hist:USER-N"
    assert key_shape(f"jny:run:{RUN}:{{s0}}:c:in17", run_id=RUN) == "jny:run:RUN:{sN}:c:inN"


async def test_redis_memory_is_summed_by_key_shape(redis: aioredis.Redis) -> None:
    run = f"probe-{uuid.uuid4().hex[:8]}:v1:x"
    keys = [f"jny:run:{run}:{{s{k}}}:c:in{n}" for k in (0, 1) for n in (1, 2)]
    await redis.mset({key: "x" * 300_000 for key in keys})  # big enough to rank first
    try:
        shapes = {row["shape"]: row for row in await redis_by_shape(redis, run_id=run)}
    finally:
        await redis.delete(*keys)
    mine = shapes["jny:run:RUN:{sN}:c:inN"]
    assert mine["keys"] == 4
    assert 1.1 < mine["mib"] < 1.3  # four values of 300,000 bytes and their overhead
