"""kill -9 the worker at several points of a 5,000-user run: no send lost, none doubled, and
the delivery controls' counts exact.

Sends go one HTTP request per message (the slowest path, about 200 a second here), so the
worker dies with pages in flight each time; more users would only make the test longer. The
run is capped (a policy cap) and budgeted, and some users fail for good, so the crashes also
land between a reservation, its send and its release."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis
import yaml

from activities.db.pool import DbPool
from journeys.contracts.runs import RunOptions
from journeys.names import budget_key, sent_history_key
from journeys.settings import Settings
from tests.conftest import settings_env, start_worker, stop_worker
from tests.engine import for_test, start_blast, write_channels, write_ids, write_plan
from tests.receiver import Receiver

USERS = 5_000
KILL_AT = (800, 2_200, 3_600)
BUDGET = 4_000
REJECTED = 100  # answered 400: they fail for good and give their reservation back
CAPPED_EVERY = 9  # one user in nine had a message from another plan an hour ago


async def test_kill_minus_nine_loses_nothing_and_doubles_nothing(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"caps": [{"max": 1, "per": "1d"}]}))
    settings = for_test(
        stack_settings, write_channels(tmp_path, receiver_url=receiver.url)
    ).model_copy(update={"policy_file": policy})
    env = settings_env(settings) | {
        "JOURNEYS_CHANNELS": str(settings.channels_file),
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
    }
    budget = [{"channel": "push", "max_messages": BUDGET}]
    plan = write_plan(
        tmp_path, channel="push", shards=4, page_size=100, concurrency=4, budget=budget
    )
    prefix = f"crash{uuid.uuid4().hex[:6]}"
    ids = write_ids(tmp_path, USERS, prefix=prefix)
    people = [f"{prefix}-{n:06d}" for n in range(1, USERS + 1)]
    receiver.permanent_for = set(people[::50][:REJECTED])
    # the cap (1 a day) stops these: another plan reached them an hour ago
    capped = set(people[3::CAPPED_EVERY]) - receiver.permanent_for
    earlier = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    pipe = redis.pipeline(transaction=False)
    for user in sorted(capped):
        pipe.zadd(sent_history_key(user), {"m|sms|other|plan/other/v1/x:hello:0": earlier})
    await pipe.execute()
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
    rows = await pool.fetch(
        "SELECT user_id, status, reason FROM deliveries WHERE run_id = $1", launched.run_id
    )
    status = {r["user_id"]: r["status"] for r in rows}
    counts = Counter(status.values())
    sent = {u for u, s in status.items() if s == "sent"}
    # The budget ran out: every user is sent, failed for good, or skipped for the cap or the
    # budget. Had a crash left a reservation unreleased, the counter would not match the
    # ledger; had one counted a user twice against the cap, more users would be skipped
    # for it.
    assert len(status) == USERS and set(counts) <= {"sent", "failed", "skipped"}
    reasons = {r["user_id"]: r["reason"] for r in rows if r["status"] == "skipped"}
    assert {u for u, reason in reasons.items() if reason == "cap"} == capped
    assert set(reasons.values()) == {"cap", "budget"}
    assert counts["failed"] <= REJECTED and set(receiver.permanent_for).isdisjoint(sent)
    assert result.totals.delivered == counts["sent"]
    assert sum(result.totals.skipped.values()) == counts["skipped"]
    assert await redis.hget(budget_key(launched.run_id, "push"), "n") == str(len(sent)).encode()
    # at most the budget: a reservation given back after the budget ran out (a user who
    # failed for good) leaves its unit unspent, since users skipped for it do not come back
    assert len(sent) <= BUDGET
    per_user = receiver.by_user()
    assert set(per_user) == sent and set(per_user.values()) == {1}
    # each sent user's history holds its one message, the others' nothing: the cap counts
    # stayed exact through the crashes
    pipe = redis.pipeline(transaction=False)
    for user in people:
        pipe.zcard(sent_history_key(user))
    held = dict(zip(people, await pipe.execute(), strict=True))
    assert {u for u, n in held.items() if n == 1} == sent | capped
    assert set(held.values()) <= {0, 1}
    # Repeats are re-sends of a message whose answer the dead worker never recorded; the
    # provider recognises them by Idempotency-Key. They are bounded by the pages in flight.
    in_flight_bound = len(KILL_AT) * 4 * 4 * 100
    assert receiver.repeats <= in_flight_bound
    print(f"\nrepeats absorbed by Idempotency-Key: {receiver.repeats}")
