"""Reading a page of a cohort from Redis, whichever protocol the client speaks."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from activities.journey.facts import page_users
from journeys.settings import Settings


@pytest.mark.parametrize("protocol", [2, 3])
async def test_a_page_holds_its_ranks_with_their_entry_numbers(
    stack_settings: Settings, protocol: int
) -> None:
    client = aioredis.Redis.from_url(stack_settings.redis_url, protocol=protocol)
    key = f"cohort-{uuid.uuid4().hex[:8]}"
    try:
        # scores are entry numbers: ranks follow them, then the member's bytes
        await client.zadd(key, {"u-c": 0, "u-a": 0, "u-b": 2, "u-é": 1, "u-z": 12_345_678})
        first = await page_users(client, key=key, page=0, page_size=2)
        second = await page_users(client, key=key, page=1, page_size=2)
        third = await page_users(client, key=key, page=2, page_size=2)
        past = await page_users(client, key=key, page=3, page_size=2)
    finally:
        await client.delete(key)
        await client.aclose()

    assert list(first.items()) == [("u-a", 0), ("u-c", 0)]
    assert list(second.items()) == [("u-é", 1), ("u-b", 2)]
    assert list(third.items()) == [("u-z", 12_345_678)]
    assert past == {}
