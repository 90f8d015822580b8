"""The quiet handover: a shard holds its signals while it continues as new, the ingest API
waits on the hold, the new run reopens them (real Temporal, Redis, PostgreSQL, ingest API)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from activities.signal_hold import SignalHold, SignalHoldActivities
from journeys.contracts.run_setup import HoldSignalsInput
from journeys.contracts.runs import RunOptions
from journeys.events import JourneyEvent
from journeys.names import shard_workflow_id, signal_hold_key, signal_passing_key
from journeys.settings import Settings
from starter.ingest.coalesce import SignalCoalescer
from tests.journey_kit import shard_handle
from tests.journey_runner import (
    Advance,
    Check,
    JourneyKit,
    LiveRun,
    Post,
    UntilListening,
    UntilShard,
)

_SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
_TASK_FAILED = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
_OPTIONS_UPDATED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED


class CountingRedis:
    """Passes everything to Redis and says when a sender has read the hold ``after`` times."""

    def __init__(self, redis: aioredis.Redis, *, after: int) -> None:
        self._redis, self._after = redis, after
        self.calls = 0
        self.polled = asyncio.Event()

    def pipeline(self, *, transaction: bool = True) -> Pipeline:
        self.calls += 1
        if self.calls >= self._after:
            self.polled.set()
        return self._redis.pipeline(transaction=transaction)

    def __getattr__(self, name: str) -> object:
        return getattr(self._redis, name)


class LookingRedis:
    """Passes everything to Redis and says when the holder has counted ``after`` times."""

    def __init__(self, redis: aioredis.Redis, *, after: int) -> None:
        self._redis, self._after = redis, after
        self.looks = 0
        self.looked = asyncio.Event()

    async def zcard(self, key: str) -> int:
        self.looks += 1
        if self.looks >= self._after:
            self.looked.set()
        return int(await self._redis.zcard(key))

    def __getattr__(self, name: str) -> object:
        return getattr(self._redis, name)


def hold_on(redis: CountingRedis, *, most: timedelta = timedelta(seconds=30)) -> SignalHold:
    return SignalHold(cast(aioredis.Redis, redis), poll=timedelta(milliseconds=1), most=most)


async def run_histories(client: Client, workflow_id: str) -> list[list[HistoryEvent]]:
    """Every run of ``workflow_id``, first to last, walking the continue-as-new chain back."""
    runs: list[list[HistoryEvent]] = []
    run: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run).fetch_history()
        runs.insert(0, list(history.events))
        started = history.events[0].workflow_execution_started_event_attributes
        run = started.continued_execution_run_id or None
        if run is None:
            return runs


def refused_by_a_signal(events: list[HistoryEvent]) -> list[HistoryEvent]:
    """The failed workflow tasks of a run, but for those the test's own clock caused.

    ``Advance`` moves the time-skipping clock by updating the workflow's options; when that
    lands during the last handover the server refuses the task as it would for a signal (the
    update is the next event). Production has no time skipping; the signals are what count.
    """
    skipped = {
        e.event_id
        for e in events
        if e.event_type == _OPTIONS_UPDATED
        and e.workflow_execution_options_updated_event_attributes.time_skipping_config_updated
    }
    return [e for e in events if e.event_type == _TASK_FAILED and e.event_id + 1 not in skipped]


def activities(events: list[HistoryEvent]) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == _SCHEDULED
    ]


async def test_each_handover_holds_signals_and_the_next_run_reopens_them(
    journey: JourneyKit, ingest_url: str
) -> None:
    journey.use_ingest(ingest_url)
    window_end = datetime.now(UTC) + timedelta(hours=1)
    users = [f"qh-{uuid.uuid4().hex[:4]}-{n:02d}" for n in range(18)]
    runs: list[list[HistoryEvent]] = []

    async def keep_runs(live: LiveRun) -> None:
        await shard_handle(live.time.client, live.run_id).result()
        runs.extend(await run_histories(live.time.client, shard_workflow_id(live.run_id, 0)))

    await journey.run(
        {
            "entry": {
                "type": "event",
                "event": "joined",
                "flush_every": "1s",
                "flush_size": 5,
                "window": {"end": window_end.isoformat()},
            },
            "steps": {"welcome": {"type": "send", "channel": "push", "template": "hello"}},
            "limits": {"page_size": 5, "concurrency": 1},
        },
        users=None,
        skipping=False,
        options=RunOptions(continue_as_new_after_pages=1),  # a handover after every page
        script=[
            UntilListening("joined"),
            *(
                Post([{"user_id": u, "name": "joined"} for u in users[n : n + 6]])
                for n in (0, 6, 12)
            ),
            UntilShard(lambda s: s.counters.delivered == len(users)),
            Advance(timedelta(hours=1, minutes=1)),
            Check(keep_runs),
        ],
    )

    assert max(journey.receiver.by_user().values()) == 1
    assert set(journey.receiver.by_user()) == set(users)
    assert len(runs) >= 3
    for earlier in runs[:-1]:  # the hold is the last thing before continuing as new
        assert earlier[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        assert activities(earlier)[-1] == "hold_signals"
    for later in runs[1:]:  # and the first thing after
        assert activities(later)[0] == "open_signals"
    assert "open_signals" not in activities(runs[0])
    failed = [e for run in runs for e in refused_by_a_signal(run)]
    assert failed == []  # no handover task was refused and replayed


@pytest.mark.parametrize("linger", [timedelta(0), timedelta(milliseconds=10)])
async def test_a_hold_keeps_the_coalescer_from_signalling_until_it_is_opened(
    stack_settings: Settings, redis: aioredis.Redis, linger: timedelta
) -> None:
    client = await Client.connect(stack_settings.temporal_address)
    run_id = f"qc-{uuid.uuid4().hex[:6]}"  # no such run: the signal finds no shard
    await redis.set(signal_hold_key(run_id, 0), "1", px=60_000)
    counting = CountingRedis(redis, after=20)
    signals = SignalCoalescer(client, linger=linger, hold=hold_on(counting))
    sending = asyncio.create_task(
        signals.send(run_id=run_id, shards=1, events=[JourneyEvent(user_id="u", name="joined")])
    )
    async with asyncio.timeout(30):
        await counting.polled.wait()  # it has looked at the hold twenty times
    assert not sending.done()  # and still holds the signal back
    await redis.delete(signal_hold_key(run_id, 0))
    async with asyncio.timeout(30):
        assert await sending == 0  # sent once opened; no shard of this run was running
    assert counting.calls >= 6


async def test_a_sender_goes_at_once_without_a_hold_and_waits_at_most_most(
    redis: aioredis.Redis,
) -> None:
    key_run = f"hold-{uuid.uuid4().hex[:6]}"
    free = CountingRedis(redis, after=1)
    async with hold_on(free).passage(key_run, [0]):
        assert free.calls == 1  # one look, no polling
        assert await redis.zcard(signal_passing_key(key_run, 0)) == 1  # it says it is passing
    assert await redis.zcard(signal_passing_key(key_run, 0)) == 0  # and that it has landed

    await redis.set(signal_hold_key(key_run, 1), "1", px=600_000)
    stuck = CountingRedis(redis, after=1)
    async with asyncio.timeout(60):  # ignoring ``most`` would wait out the key's 10 minutes
        async with hold_on(stuck, most=timedelta(milliseconds=50)).passage(key_run, [1]) as waited:
            assert waited >= 0.05  # a hold left behind delays a sender by ``most``, no longer
    assert stuck.calls >= 2
    await redis.delete(signal_hold_key(key_run, 1))


async def test_a_hold_waits_for_the_signals_already_past_it(redis: aioredis.Redis) -> None:
    run_id = f"hp-{uuid.uuid4().hex[:6]}"
    looking = LookingRedis(redis, after=3)
    holder = SignalHoldActivities(
        redis=cast(aioredis.Redis, looking), poll=timedelta(milliseconds=1)
    )
    sender = hold_on(CountingRedis(redis, after=1))
    async with sender.passage(run_id, [0]):  # read the key before the hold was set
        holding = asyncio.create_task(holder.hold_signals(HoldSignalsInput(run_id=run_id, shard=0)))
        async with asyncio.timeout(30):
            await looking.looked.wait()  # it has counted the passing signals three times
        assert await redis.exists(signal_hold_key(run_id, 0))
        assert not holding.done()  # the hold is set but this signal is still on its way
    async with asyncio.timeout(30):
        assert (await holding).drained  # it landed, so the shard may hand over
    await redis.delete(signal_hold_key(run_id, 0))


async def test_a_sender_that_died_past_the_hold_delays_it_by_the_drain_at_most(
    redis: aioredis.Redis,
) -> None:
    run_id = f"hd-{uuid.uuid4().hex[:6]}"
    await redis.zadd(signal_passing_key(run_id, 0), {"died": 0})  # long stale: dropped
    holder = SignalHoldActivities(redis=redis, poll=timedelta(milliseconds=1))
    async with asyncio.timeout(30):
        out = await holder.hold_signals(HoldSignalsInput(run_id=run_id, shard=0))
    assert out.drained
    await redis.zadd(signal_passing_key(run_id, 0), {"hung": int(time.time() * 1000)})
    async with asyncio.timeout(30):
        out = await holder.hold_signals(
            HoldSignalsInput(run_id=run_id, shard=0, drain=timedelta(milliseconds=50))
        )
    assert not out.drained  # a fresh entry that never clears is waited out, then ignored
    await redis.delete(signal_hold_key(run_id, 0), signal_passing_key(run_id, 0))


async def test_a_hold_that_cannot_be_read_lets_the_signal_go() -> None:
    unreachable = aioredis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.2)
    hold = SignalHold(unreachable, most=timedelta(minutes=10))
    async with asyncio.timeout(60):  # neither raises nor waits out ``most``
        async with hold.passage("any-run", [0, 1]):
            pass
    await unreachable.aclose()
