"""Event-triggered journeys: entries from events over HTTP, re-entry rules, keyed waits,
exits and conversions per entry (real services, virtual time for the shard)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from pydantic import TypeAdapter
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from activities.db.pool import DbPool
from activities.journey.entries import EntryActivities
from journeys.contracts.counters import Counters
from journeys.contracts.journey import AdmitEntriesInput
from journeys.contracts.runs import RunOptions
from journeys.events import JourneyEvent
from journeys.names import cohort_key, listeners_key
from journeys.plan.entry import EventEntry
from starter.ingest.coalesce import SignalCoalescer
from tests.journey_kit import (
    run_handle,
    seed_profiles,
    shard_handle,
    shard_run_inputs,
    shard_runs,
)
from tests.journey_runner import (
    Advance,
    Cancel,
    Check,
    JourneyKit,
    LiveRun,
    Post,
    Send,
    UntilListening,
    UntilRun,
    UntilShard,
)


def recall_plan(window_end: datetime) -> dict[str, Any]:
    return {
        "entry": {
            "type": "event",
            "event": "order_cancelled",
            "where": {"reason": "price_too_low"},
            "reentry": "when_absent",
            "flush_every": "1s",
            "flush_size": 50,
            "window": {"end": window_end.isoformat()},
        },
        "steps": {
            "coupon": {"type": "send", "channel": "push", "template": "recall", "next": "paid"},
            "paid": {
                "type": "wait_for_event",
                "event": "order_paid",
                "match_entry": "order_id",
                "within": "1h",
                "on_event": "thanks",
                "on_timeout": "nudge",
            },
            "thanks": {"type": "send", "channel": "popup", "template": "hello"},
            "nudge": {"type": "send", "channel": "sms", "template": "nudge"},
        },
        "goal": {"event": "order_paid", "within": "1d", "value_prop": "amount"},
        "exit_criteria": [{"event": "unsubscribed"}],
    }


async def test_orders_cancelled_start_recalls_told_apart_by_order(
    journey: JourneyKit, ingest_url: str
) -> None:
    journey.use_ingest(ingest_url)
    window_end = datetime.now(UTC) + timedelta(hours=2)
    tag = uuid.uuid4().hex[:6]
    users = [f"oc-{tag}-{n}" for n in range(10)]
    cancelled = [
        {
            "user_id": u,
            "name": "order_cancelled",
            "event_id": f"{tag}:{u}:c1",
            "props": {"order_id": f"o-{u}-1", "reason": "price_too_low"},
        }
        for u in users
    ]
    outcome = await journey.run(
        recall_plan(window_end),
        users=None,
        skipping=False,
        script=[
            UntilListening("order_cancelled"),
            Post(
                [
                    *cancelled,
                    cancelled[0],  # the same event again: de-duplicated
                    {
                        "user_id": f"oc-{tag}-other",
                        "name": "order_cancelled",
                        "props": {"order_id": "x", "reason": "dont_trust"},  # not this plan's
                    },
                ]
            ),
            UntilShard(lambda s: s.counters.delivered == 10),
            Post(  # u1 cancels a second order while in the journey
                [
                    {
                        "user_id": users[1],
                        "name": "order_cancelled",
                        "props": {"order_id": f"o-{users[1]}-2", "reason": "price_too_low"},
                    }
                ]
            ),
            UntilShard(lambda s: sum(s.counters.skipped.values()) == 1),
            Post(
                [
                    {  # pays the cancelled order: caught, converts
                        "user_id": users[0],
                        "name": "order_paid",
                        "props": {"order_id": f"o-{users[0]}-1", "amount": 30},
                    },
                    {  # pays some other order: not this entry's, stays waiting
                        "user_id": users[1],
                        "name": "order_paid",
                        "props": {"order_id": f"o-{users[1]}-2", "amount": 5},
                    },
                    {"user_id": users[2], "name": "unsubscribed"},
                ]
            ),
            UntilShard(lambda s: s.nodes["paid"].routes.get("event") == 1),
            Advance(timedelta(days=1, hours=3)),
        ],
    )

    run = outcome.run_id
    for user in users:
        got = outcome.users[user]
        assert got.paths.keys() == {1}  # one entry each: the second cancel was refused
        if user == users[0]:
            assert (got.path, got.messages) == (["coupon", "paid", "thanks"], ["coupon", "thanks"])
        elif user == users[2]:
            assert got.exited and got.messages == ["coupon"]
        else:
            assert (got.path, got.messages) == (["coupon", "paid", "nudge"], ["coupon", "nudge"])
    keys = set(journey.receiver.messages())
    assert f"{run}:coupon:{users[0]}:1" in keys  # the entry number in the idempotency key
    coupon = journey.receiver.messages()[f"{run}:coupon:{users[0]}:1"]
    assert f"for o-{users[0]}-1" in json.dumps(coupon)  # the entry event's props in templates
    inbox = await journey.pool.fetch(
        "SELECT user_id FROM inbox WHERE message_id LIKE $1", f"{run}:%"
    )
    assert [r["user_id"] for r in inbox] == [users[0]]
    totals = outcome.result.totals
    assert totals.targeted == 10 and totals.exited == 1
    assert totals.skipped == {"entry: re-entry (when_absent)": 1}
    rows = await journey.pool.fetch(
        "SELECT user_id, entry, value FROM conversions WHERE run_id = $1", run
    )
    # the goal is the user's, not the order's: any payment in the window converts the entry
    assert sorted((r["user_id"], r["entry"], r["value"]) for r in rows) == [
        (users[0], 1, 30),
        (users[1], 1, 5),
    ]
    assert outcome.nodes["paid"].routes == {"event": 1, "timeout": 8}
    assert await journey.redis.hget(listeners_key("order_cancelled"), run) is None


def entry(**fields: Any) -> EventEntry:
    return TypeAdapter(EventEntry).validate_python({"type": "event", "event": "e", **fields})


async def test_entry_rules_once_cooldown_absent_daily_limit_and_retries(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    activities = EntryActivities(pool=pool, redis=redis)
    run = f"plan/rules-{uuid.uuid4().hex[:6]}/v1/k"
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    await seed_profiles(pool, {f"{run}-vip": {"attrs": {"tier": "gold"}}})

    async def admit(
        batch: str,
        users: list[str],
        rule: EventEntry,
        *,
        at: datetime = now,
        live: tuple[str, ...] = (),
        shard: int = 0,
    ) -> dict[str, int]:
        out = await activities.admit_entries(
            AdmitEntriesInput(
                run_id=run,
                shard=shard,
                batch=batch,
                cohort_key=cohort_key(run, shard, batch),
                entry=rule,
                events=[JourneyEvent(user_id=u, name="e", props={"n": 1}) for u in users],
                live_keys=list(live),
                now=at,
            )
        )
        members: list[Any] = await redis.zrange(
            cohort_key(run, shard, batch), 0, -1, withscores=True
        )
        assert len(members) == out.admitted
        return {m.decode(): int(s) for m, s in members}

    once = entry(reentry="once")
    assert await admit("b1", ["a", "b", "a"], once) == {"a": 1, "b": 1}  # one per batch
    assert await admit("b1", ["a", "b", "c"], once) == {"a": 1, "b": 1}  # a retry: same result
    assert await admit("b2", ["a", "c"], once) == {"c": 1}  # a may not come back
    assert await admit("b1", ["x"], once, shard=1) == {"x": 1}  # batch names count per shard

    cool = entry(reentry="after_cooldown", cooldown="1h")
    assert await admit("b3", ["c"], cool, at=now + timedelta(minutes=30)) == {}
    assert await admit("b4", ["c"], cool, at=now + timedelta(hours=1)) == {"c": 2}

    absent = entry(reentry="when_absent")
    live = (cohort_key(run, 0, "b4"),)  # c stands in the journey now
    assert await admit("b5", ["c", "d"], absent, live=live) == {"d": 1}

    limited = entry(reentry="when_absent", daily_limit=3)
    assert await admit("b6", ["e", "f"], limited) == {"e": 1, "f": 1}
    assert await admit("b7", ["g", "h"], limited) == {"g": 1}  # 3 a day
    assert await admit("b7", ["g", "h"], limited) == {"g": 1}  # a retry takes no more
    assert await admit("b8", ["h"], limited, at=now + timedelta(days=1)) == {"h": 1}

    gold = entry(
        rule={
            "all": [
                {"tag": "tier", "op": "eq", "value": "gold"},
                {"tag": "entry.n", "op": "eq", "value": 1},
            ]
        }
    )
    assert await admit("b9", [f"{run}-vip", "nobody"], gold) == {f"{run}-vip": 1}


async def test_entries_arriving_across_continue_as_new_each_enter_once(
    journey: JourneyKit, ingest_url: str
) -> None:
    journey.use_ingest(ingest_url)
    window_end = datetime.now(UTC) + timedelta(hours=1)
    users = [f"cx-{uuid.uuid4().hex[:4]}-{n:03d}" for n in range(24)]
    waves = [  # each user twice, the repeat a wave later
        Post(
            [
                {"user_id": u, "name": "signed_up"}
                for u in users[n : n + 6] + users[max(0, n - 6) : n]
            ]
        )
        for n in range(0, len(users), 6)
    ]
    runs: list[int] = []

    async def count_runs(live: LiveRun) -> None:
        await shard_handle(live.time.client, live.run_id).result()
        runs.append(len(await shard_runs(live.time.client, live.run_id)))

    outcome = await journey.run(
        {
            "entry": {
                "type": "event",
                "event": "signed_up",
                "reentry": "once",
                "flush_every": "1s",
                "flush_size": 5,
                "window": {"end": window_end.isoformat()},
            },
            "steps": {"welcome": {"type": "send", "channel": "push", "template": "hello"}},
            "limits": {"page_size": 5, "concurrency": 1},
        },
        users=None,
        skipping=False,
        options=RunOptions(continue_as_new_after_pages=1),  # renew after every page sent
        script=[
            UntilListening("signed_up"),
            *waves,
            UntilShard(
                lambda s: (
                    s.counters.delivered == len(users)
                    and sum(s.counters.skipped.values()) == len(users) - 6
                )
            ),
            Advance(timedelta(hours=1, minutes=1)),
            Check(count_runs),
        ],
    )

    assert max(journey.receiver.by_user().values()) == 1
    assert set(journey.receiver.by_user()) == set(users)
    assert all(outcome.users[u].paths == {1: ["welcome"]} for u in users)  # entered once
    assert outcome.result.totals.targeted == len(users)
    assert outcome.result.totals.skipped == {"entry: re-entry (once)": len(users) - 6}
    assert runs[0] >= 3


async def test_events_right_after_launch_reach_every_shard(
    journey: JourneyKit, ingest_url: str
) -> None:
    journey.use_ingest(ingest_url)
    users = [f"sa-{uuid.uuid4().hex[:4]}-{n:02d}" for n in range(40)]
    histories: list[WorkflowHistory] = []

    async def keep_history(live: LiveRun) -> None:
        run = run_handle(live.time.client, live.run_id)
        await run.result()
        histories.append(await run.fetch_history())

    outcome = await journey.run(
        {
            "shards": 4,
            "entry": {"type": "event", "event": "signed_up", "flush_every": "200ms"},
            "steps": {"welcome": {"type": "send", "channel": "push", "template": "hello"}},
        },
        users=None,
        skipping=False,
        script=[
            # the run registers once its shards run, so events sent now all find their shard
            UntilListening("signed_up"),
            Post([{"user_id": u, "name": "signed_up"} for u in users]),
            UntilRun(lambda p: p.totals.delivered == len(users)),
            Cancel(),
            Check(keep_history),
        ],
    )

    assert set(journey.receiver.by_user()) == set(users)
    assert outcome.paths() == {u: ["welcome"] for u in sorted(users)}
    totals = outcome.result.totals
    assert totals.targeted == len(users) and totals.delivered == len(users)
    # Not left to the race above: the run lists itself only after all four shards started.
    events = histories[0].events
    started = [
        n
        for n, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
    ]
    registered = next(
        n
        for n, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "register_listeners"
    )
    assert len(started) == 4 and max(started) < registered


async def test_a_flood_of_entries_is_admitted_before_continue_as_new(
    journey: JourneyKit, ingest_url: str
) -> None:
    journey.use_ingest(ingest_url)
    users = [f"fl-{uuid.uuid4().hex[:4]}-{n:04d}" for n in range(1200)]
    padding = "x" * 2000  # 1,200 events of ~2 KB: more than one continue-as-new input may hold
    inputs: list[int] = []

    async def keep_inputs(live: LiveRun) -> None:
        await shard_handle(live.time.client, live.run_id).result()
        inputs.extend(await shard_run_inputs(live.time.client, live.run_id))

    outcome = await journey.run(
        {
            "entry": {"type": "event", "event": "browsed", "flush_every": "1s"},
            "steps": {"welcome": {"type": "send", "channel": "push", "template": "hello"}},
            "limits": {"page_size": 500},
        },
        users=None,
        skipping=False,
        options=RunOptions(continue_as_new_after_pages=1),
        script=[
            UntilListening("browsed"),
            Post([{"user_id": u, "name": "browsed", "props": {"pad": padding}} for u in users]),
            UntilShard(lambda s: s.counters.delivered == len(users)),
            Cancel(),
            Check(keep_inputs),
        ],
    )

    by_user = journey.receiver.by_user()
    assert set(by_user) == set(users) and max(by_user.values()) == 1
    assert outcome.paths() == {u: ["welcome"] for u in sorted(users)}
    assert len(inputs) >= 2
    assert max(inputs) < 512 * 1024  # waiting events were admitted, not carried


async def test_concurrent_requests_share_one_signal_per_shard(journey: JourneyKit) -> None:
    users = [f"co-{uuid.uuid4().hex[:4]}-{n:02d}" for n in range(20)]
    reached: list[int] = []
    histories: list[WorkflowHistory] = []

    async def twenty_requests_in_one_linger(live: LiveRun) -> None:
        signals = SignalCoalescer(live.time.client, linger=timedelta(seconds=1))
        reached.extend(
            await asyncio.gather(
                *(
                    signals.send(
                        run_id=live.run_id,
                        shards=1,
                        events=[JourneyEvent(user_id=u, name="signed_up")],
                    )
                    for u in users
                )
            )
        )

    async def keep_history(live: LiveRun) -> None:
        shard = shard_handle(live.time.client, live.run_id)
        await shard.result()
        histories.append(await shard.fetch_history())

    await journey.run(
        {
            "entry": {"type": "event", "event": "signed_up", "flush_every": "200ms"},
            "steps": {"welcome": {"type": "send", "channel": "push", "template": "hello"}},
        },
        users=None,
        skipping=False,
        script=[
            UntilListening("signed_up"),
            Check(twenty_requests_in_one_linger),
            UntilShard(lambda s: s.counters.delivered == len(users)),
            Cancel(),
            Check(keep_history),
        ],
    )

    assert reached == [1] * len(users)
    received = [
        e
        for e in histories[0].events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and e.workflow_execution_signaled_event_attributes.signal_name == "events"
    ]
    assert len(received) == 1
    assert set(journey.receiver.by_user()) == set(users)


async def test_users_caught_by_an_event_keep_their_entry_for_the_next_nodes(
    journey: JourneyKit,
) -> None:
    """After a wait_for_event, a send still knows which entry brought the user in: its
    idempotency key carries the entry number and its template the entry event's props."""
    tag = uuid.uuid4().hex[:6]
    users = [f"ke-{tag}-{n}" for n in range(3)]
    end = datetime.now(UTC) + timedelta(days=2)
    cancels = [
        JourneyEvent(user_id=u, name="order_cancelled", props={"order_id": f"o-{u}", "reason": "x"})
        for u in users
    ]
    outcome = await journey.run(
        {
            "entry": {
                "type": "event",
                "event": "order_cancelled",
                "flush_every": "1s",
                "window": {"end": end.isoformat()},
            },
            "steps": {
                "wait": {
                    "type": "wait_for_event",
                    "event": "app_opened",
                    "within": "1h",
                    "on_event": "thanks",
                },
                "thanks": {"type": "send", "channel": "push", "template": "recall"},
            },
        },
        users=None,
        skipping=False,
        script=[
            Send(cancels),
            UntilShard(lambda s: sum(w.users for w in s.waits) == 3),
            Send([JourneyEvent(user_id=u, name="app_opened") for u in users[:2]]),
            UntilShard(lambda s: s.nodes.get("thanks", Counters()).delivered == 2),
            Cancel(),
        ],
    )

    assert {u: outcome.users[u].path for u in users} == {
        users[0]: ["wait", "thanks"],
        users[1]: ["wait", "thanks"],
        users[2]: ["wait"],
    }
    got = journey.receiver.messages()
    assert sorted(got) == sorted(f"{outcome.run_id}:thanks:{u}:1" for u in users[:2])
    assert {m["user_id"]: m["content"]["body"] for m in got.values()} == {
        u: f"for o-{u}" for u in users[:2]
    }
