"""Pause, resume, cancel, a live rate change and continue-as-new on a running blast."""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml

from activities.db.pool import DbPool
from activities.rate_limit import RateLimiter
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import (
    ControlSignal,
    RateUpdate,
    RunOptions,
    ShardSummary,
)
from journeys.contracts.shard import ShardState
from journeys.names import channel_rate_scope, shard_workflow_id
from journeys.settings import Settings
from starter.run_state import live_progress
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
from tests.journey_kit import shard_handle
from tests.receiver import Receiver
from workflows.plan_run import PlanRunWorkflow
from workflows.shard import ShardWorkflow

OPTIONS = RunOptions(page_heartbeat_timeout=timedelta(seconds=5), progress_every=timedelta(0))


def progress_signals(history: Any) -> int:
    """How many ``shard_progress`` signals the run's history holds."""
    return sum(
        1
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
        and e.workflow_execution_signaled_event_attributes.signal_name == "shard_progress"
    )


async def shard_states(settings: Settings, run_id: str, shards: int) -> list[ShardSummary]:
    client = await client_for(settings)
    return [
        await shard_handle(client, run_id, k).query(ShardWorkflow.progress) for k in range(shards)
    ]


async def test_pause_holds_resume_continues_cancel_stops(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    plan = write_plan(tmp_path, channel="push", shards=2, rate="200/s", page_size=20, concurrency=1)
    ids = write_ids(tmp_path, 2_000, prefix="ctl")
    async with worker_running(settings):
        launched, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=OPTIONS
        )
        await until(handle, lambda p: p.totals.delivered >= 100)
        await handle.signal(PlanRunWorkflow.pause, ControlSignal())
        async with asyncio.timeout(60):
            while True:
                states = await shard_states(settings, launched.run_id, 2)
                if all(s.status is RunStatus.PAUSED and s.inflight == 0 for s in states):
                    break
        held = len(receiver.messages())
        for _ in range(20):  # the receiver hears nothing while paused
            progress = await handle.query(PlanRunWorkflow.progress)
            assert progress.status is RunStatus.PAUSED
        assert len(receiver.messages()) == held
        assert sum(s.counters.delivered for s in states) == held

        await handle.signal(PlanRunWorkflow.resume, ControlSignal())
        await until(handle, lambda p: p.totals.delivered >= held + 200)
        await handle.signal(PlanRunWorkflow.cancel, ControlSignal())
        result = await handle.result()

    totals = result.totals
    assert result.status is RunStatus.CANCELLED
    assert totals.delivered + totals.cancelled == 2_000
    assert 0 < totals.cancelled < 2_000 - held
    assert len(receiver.messages()) == totals.delivered
    rows = await pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE run_id = $1 AND status = 'sent'", launched.run_id
    )
    assert rows == totals.delivered


async def test_rate_can_change_while_running(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    plan = write_plan(tmp_path, channel="push", shards=2, rate="20/s", page_size=10)
    ids = write_ids(tmp_path, 400, prefix="rate")
    limiter = RateLimiter(redis)
    async with worker_running(settings):
        launched, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=OPTIONS
        )
        await until(handle, lambda p: p.totals.delivered >= 20)
        assert await limiter.rate(launched.run_id) == 20
        before = (await handle.query(PlanRunWorkflow.progress)).totals.delivered
        assert before < 400  # 20/s cannot have finished 400 users yet
        changed = await handle.execute_update(
            PlanRunWorkflow.set_rate, RateUpdate(per_second=5_000)
        )
        assert changed.per_second == 5_000
        assert await limiter.rate(launched.run_id) == 5_000
        result = await handle.result()
    assert result.totals.delivered == 400
    assert await limiter.rate(launched.run_id) == 0  # the bucket went with the run


def busiest(arrivals: list[float], *, window: float) -> int:
    """The most requests that arrived within any ``window`` seconds."""
    arrivals = sorted(arrivals)
    return max((bisect_right(arrivals, t + window) - i for i, t in enumerate(arrivals)), default=0)


async def test_a_channel_rate_paces_every_plan_from_one_bucket(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    channels = write_channels(tmp_path, receiver_url=receiver.url)
    body = yaml.safe_load(channels.read_text())
    body["channels"]["push"]["rate"] = "10/s"  # the provider's own limit
    channels.write_text(yaml.safe_dump(body))
    settings = for_test(stack_settings, channels)
    scope, limiter = channel_rate_scope("push"), RateLimiter(redis)
    await limiter.reset_rate(scope)
    plans = [write_plan(tmp_path, channel="push", shards=2, page_size=10) for _ in range(2)]
    audiences = [write_ids(tmp_path, 100, prefix=f"chrate{n}") for n in range(2)]
    try:
        async with worker_running(settings):
            handles = []
            for plan, ids in zip(plans, audiences, strict=True):
                _, handle = await start_blast(
                    settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=OPTIONS
                )
                handles.append(handle)
            for handle in handles:  # both plans are sending
                await until(handle, lambda p: p.totals.delivered >= 5)
            # about 4 s at the shared 10/s
            assert await asyncio.to_thread(receiver.wait_for_messages, 40, within=60)
            paced = [r.at for r in receiver.requests]
            # what `journeys rate push 0` does: every plan is unpaced at once
            await limiter.set_rate(scope, per_second=0, expires=False)
            results = [await handle.result() for handle in handles]
    finally:
        await limiter.reset_rate(scope)
    # One bucket of 10/s (a second's burst): at most 10 + 20 in any 2 s, whatever the
    # machine's speed (a slow machine sends fewer); a bucket per plan would allow twice that.
    assert busiest(paced, window=2.0) <= 35
    assert [r.totals.delivered for r in results] == [100, 100]
    assert len(receiver.messages()) == 200


async def test_token_bucket_grants_a_burst_then_waits(redis: aioredis.Redis) -> None:
    limiter = RateLimiter(redis)
    await limiter.set_rate("bucket-test", per_second=10)
    granted, wait = await limiter.take("bucket-test", want=100)
    assert granted == 10  # one second's burst
    again, wait = await limiter.take("bucket-test", want=100)
    assert again <= 1 and wait > timedelta(0)
    await limiter.set_rate("bucket-test", per_second=0)
    unlimited, _ = await limiter.take("bucket-test", want=100)
    assert unlimited == 100
    await limiter.delete("bucket-test")


async def test_continue_as_new_carries_the_cursor(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    plan = write_plan(tmp_path, channel="popup", shards=1, page_size=100, concurrency=3)
    ids = write_ids(tmp_path, 1_500, prefix="can")
    options = OPTIONS.model_copy(update={"continue_as_new_after_pages": 4})
    async with worker_running(settings):
        launched, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=options
        )
        result = await handle.result()
        client = await client_for(settings)
        history = await client.get_workflow_handle(
            shard_workflow_id(launched.run_id, 0)
        ).fetch_history()

    assert result.totals.delivered == 1_500 and result.totals.settled == 1_500
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id  # the latest run was continued from another
    (carried,) = await client.data_converter.decode(started.input.payloads, [ShardState])
    assert carried.generation >= 3  # 15 pages, a new run every 4
    sent = await pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE run_id = $1 AND status = 'sent'", launched.run_id
    )
    assert sent == 1_500


async def test_progress_signals_stay_within_budget_and_status_stays_live(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    plan = write_plan(tmp_path, channel="push", shards=2, page_size=25, concurrency=1, rate="400/s")
    ids = write_ids(tmp_path, 800, prefix="budget")
    options = OPTIONS.model_copy(update={"progress_budget": 4})
    async with worker_running(settings):
        client = await client_for(settings)
        _, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=options
        )
        async with asyncio.timeout(120):
            while (await live_progress(client, handle)).totals.delivered < 300:
                pass
        live = await live_progress(client, handle)
        reported = await handle.query(PlanRunWorkflow.progress)
        result = await handle.result()
        history = await handle.fetch_history()

    assert progress_signals(history) <= 4  # 2 shards x (4 // 2)
    assert live.totals.delivered >= 300 > reported.totals.delivered  # the run stopped hearing
    assert result.totals.delivered == 800  # and still ends with the exact counts


async def test_a_pass_reaches_the_run_while_its_shard_waits_and_a_last_pass_costs_no_signal(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    slow = RunOptions(progress_every=timedelta(hours=1))  # only the end of a pass reports
    waiting = write_plan(tmp_path, channel="push", shards=2)
    body = yaml.safe_load(waiting.read_text())
    body["steps"]["hello"]["next"] = "later"
    body["steps"]["later"] = {"type": "wait", "duration": "1d"}
    waiting.write_text(yaml.safe_dump(body))
    ids = write_ids(tmp_path, 300, prefix="pass")
    async with worker_running(settings):
        _, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=waiting, ids_file=ids, options=slow
        )
        # the shards now wait a day: the run knows what their send pass did
        await until(handle, lambda p: p.totals.delivered == 300)
        await handle.signal(PlanRunWorkflow.cancel, ControlSignal())
        await handle.result()

        _, blast = await start_blast(
            settings,
            pool=pool,
            redis=redis,
            plan_file=write_plan(tmp_path, channel="push", shards=2),
            ids_file=ids,
            options=slow,
        )
        result = await blast.result()
        history = await blast.fetch_history()

    assert result.totals.delivered == 300  # from the shards' results
    assert progress_signals(history) == 0
