"""The blast engine end to end: real Temporal, Redis, PostgreSQL and a real HTTP receiver."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import yaml

from activities.audience.shard_sets import check_audience, save_audience
from activities.db.pool import DbPool
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import RunOptions
from journeys.names import audience_shard_key, run_keys_pattern, shard_workflow_id
from journeys.settings import Settings
from starter.launching import launch
from starter.plan_files import read_plan
from tests.engine import (
    client_for,
    for_test,
    start_blast,
    until,
    worker_running,
    write_channels,
    write_ids,
    write_plan,
)
from tests.receiver import Receiver
from workflows import search

FAST = RunOptions(page_heartbeat_timeout=timedelta(seconds=5))


async def run_keys(redis: aioredis.Redis, run_id: str) -> list[bytes]:
    return [k async for k in redis.scan_iter(match=run_keys_pattern(run_id), count=1000)]


async def delivery_statuses(pool: DbPool, run_id: str) -> Counter[str]:
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM deliveries WHERE run_id = $1 GROUP BY status", run_id
    )
    return Counter({r["status"]: r["n"] for r in rows})


async def test_blast_to_the_inbox_reaches_everyone_once(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    plan = write_plan(tmp_path, channel="popup", shards=4)
    ids = write_ids(tmp_path, 2_000, prefix="inbox")
    async with worker_running(settings):
        launched, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=FAST
        )
        result = await handle.result()
        described = await handle.describe()
        client = await client_for(settings)
        shard0 = await client.get_workflow_handle(shard_workflow_id(launched.run_id, 0)).describe()

    assert result.status is RunStatus.COMPLETED
    assert (result.totals.targeted, result.totals.delivered) == (2_000, 2_000)
    assert result.totals.failed == {} and result.totals.cancelled == 0
    assert await delivery_statuses(pool, launched.run_id) == Counter({"sent": 2_000})
    inbox = await pool.fetchval(
        "SELECT count(DISTINCT user_id) FROM inbox WHERE message_id LIKE $1", f"{launched.run_id}:%"
    )
    assert inbox == 2_000
    assert await run_keys(redis, launched.run_id) == []  # working keys cleaned up
    attrs = described.typed_search_attributes
    assert attrs.get(search.PLAN_ID) == launched.plan_id
    assert attrs.get(search.PLAN_VERSION) == launched.version
    assert attrs.get(search.STATUS) == "completed"
    assert shard0.typed_search_attributes.get(search.SHARD) == 0
    assert shard0.typed_search_attributes.get(search.STATUS) == "completed"


@pytest.mark.parametrize("channel", ["push", "batchpush"])
async def test_http_delivery_signed_keyed_and_once(
    channel: str,
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    receiver.secret = "s3cret"
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    plan = write_plan(tmp_path, channel=channel, shards=2)
    ids = write_ids(tmp_path, 600, prefix=channel)
    async with worker_running(settings):
        launched, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=FAST
        )
        result = await handle.result()

    assert result.totals.delivered == 600
    assert all(r.signature_ok for r in receiver.requests)
    assert set(receiver.by_user().values()) == {1} and len(receiver.by_user()) == 600
    keys = set(receiver.messages())
    assert keys == {f"{launched.run_id}:hello:{channel}-{n:06d}:0" for n in range(1, 601)}
    if channel == "push":
        assert {r.headers["idempotency-key"] for r in receiver.requests} == keys
    else:  # batches of at most 50 within pages of 100
        assert all(len(r.body["messages"]) <= 50 for r in receiver.requests)
        assert len(receiver.requests) >= math.ceil(600 / 50)


async def test_random_failures_are_retried_and_the_counts_add_up(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    receiver.fail_ratio = 0.3
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    plan = write_plan(tmp_path, channel="push", shards=4, retry={"attempts": 3, "backoff": "1s"})
    ids = write_ids(tmp_path, 1_500, prefix="flaky")
    async with worker_running(settings):
        launched, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=FAST
        )
        result = await handle.result()

    totals = result.totals
    dead = sum(n for reason, n in totals.failed.items() if reason.startswith("dead"))
    assert totals.delivered + dead == 1_500 == totals.settled
    assert set(totals.failed) <= {"dead: HTTP 503"}
    assert len(receiver.messages()) == totals.delivered
    assert max(receiver.by_user().values()) == 1
    statuses = await delivery_statuses(pool, launched.run_id)
    assert statuses == Counter({"sent": totals.delivered, "dead": dead}) - Counter()
    assert any(r.status == 503 for r in receiver.requests)  # failures really happened


async def test_permanent_failures_are_recorded_at_once(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    refused = {f"perm-{n:06d}" for n in range(1, 26)}
    receiver.permanent_for = refused
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    plan = write_plan(tmp_path, channel="push", shards=2)
    ids = write_ids(tmp_path, 300, prefix="perm")
    async with worker_running(settings):
        launched, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=FAST
        )
        result = await handle.result()

    assert result.totals.delivered == 275
    assert sum(result.totals.failed.values()) == 25
    assert all(reason.startswith("HTTP 400") for reason in result.totals.failed)
    rows = await pool.fetch(
        "SELECT user_id, reason, attempts FROM deliveries WHERE run_id = $1 AND status = 'failed'",
        launched.run_id,
    )
    assert {r["user_id"] for r in rows} == refused
    assert all(r["reason"].startswith("HTTP 400") and r["attempts"] == 1 for r in rows)
    tries = Counter(r.body["user_id"] for r in receiver.requests if r.status == 400)
    assert tries == Counter(dict.fromkeys(refused, 1))  # never retried


async def test_provider_down_for_a_while_then_back(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    plan = write_plan(tmp_path, channel="push", shards=2, retry={"attempts": 6, "backoff": "1s"})
    ids = write_ids(tmp_path, 400, prefix="down")
    receiver.down()
    options = FAST.model_copy(update={"progress_every": timedelta(0)})
    async with worker_running(settings):
        launched, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=options
        )
        waiting = await until(handle, lambda p: p.totals.retrying == 400)
        assert waiting.totals.delivered == 0
        receiver.up()
        result = await handle.result()

    assert result.totals.delivered == 400 and result.totals.failed == {}
    assert len(receiver.by_user()) == 400 and set(receiver.by_user().values()) == {1}
    assert await delivery_statuses(pool, launched.run_id) == Counter({"sent": 400})


async def test_a_saved_audience_outlives_its_run(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    name = f"kept-{uuid.uuid4().hex[:8]}"
    ids = [f"kept-{n:05d}" for n in range(500)]
    saved = await save_audience(redis, pool, name=name, ids=ids, shards=4, source="test")
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    body = yaml.safe_load(write_plan(tmp_path, channel="popup", shards=4).read_text())
    body["audience"] = {"source": "list", "name": name}
    plan = tmp_path / "saved.yaml"
    plan.write_text(yaml.safe_dump(body))
    async with worker_running(settings):
        client = await client_for(settings)
        launched, handle = await launch(
            settings,
            client=client,
            pool=pool,
            redis=redis,
            plan=read_plan(plan, channels=settings.channels_file),
            plan_file=plan,
            options=FAST,
        )
        result = await handle.result()

    assert result.totals.delivered == 500
    assert await run_keys(redis, launched.run_id) == []
    assert await check_audience(redis, saved) == []  # every shard still there, same counts
    sizes = [await redis.zcard(audience_shard_key(name, k)) for k in range(4)]
    assert sum(sizes) == 500
