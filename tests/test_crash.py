"""kill -9 the worker at several points of a 5,000-user run: no send lost, none doubled.

Sends go one HTTP request per message (the slowest path, about 200 a second here), so the
worker dies with pages in flight each time; more users would only make the test longer."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import redis.asyncio as aioredis

from activities.db.pool import DbPool
from journeys.contracts.runs import RunOptions
from journeys.settings import Settings
from tests.conftest import settings_env, start_worker, stop_worker
from tests.engine import for_test, start_blast, write_channels, write_ids, write_plan
from tests.receiver import Receiver

USERS = 5_000
KILL_AT = (800, 2_200, 3_600)


async def test_kill_minus_nine_loses_nothing_and_doubles_nothing(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    env = settings_env(settings) | {
        "JOURNEYS_CHANNELS": str(settings.channels_file),
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
    }
    plan = write_plan(tmp_path, channel="push", shards=4, page_size=100, concurrency=4)
    ids = write_ids(tmp_path, USERS, prefix="crash")
    options = RunOptions(page_heartbeat_timeout=timedelta(seconds=3))

    worker = await start_worker(env)
    kills = 0
    try:
        launched, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=options
        )
        for threshold in KILL_AT:
            assert await asyncio.to_thread(receiver.wait_for_messages, threshold, within=300)
            worker.send_signal(signal.SIGKILL)
            await stop_worker(worker)
            kills += 1
            worker = await start_worker(env)
        async with asyncio.timeout(600):
            result = await handle.result()
    finally:
        await stop_worker(worker)

    assert kills == len(KILL_AT)
    assert result.totals.delivered == USERS
    per_user = receiver.by_user()
    assert len(per_user) == USERS and set(per_user.values()) == {1}
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM deliveries WHERE run_id = $1 GROUP BY status",
        launched.run_id,
    )
    assert Counter({r["status"]: r["n"] for r in rows}) == Counter({"sent": USERS})
    # Repeats are re-sends of a message whose answer the dead worker never recorded; the
    # provider recognises them by Idempotency-Key. They are bounded by the pages in flight.
    in_flight_bound = len(KILL_AT) * 4 * 4 * 100
    assert receiver.repeats <= in_flight_bound
    print(f"\nrepeats absorbed by Idempotency-Key: {receiver.repeats}")
