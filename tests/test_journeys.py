"""Journeys end to end on virtual time: real worker, Temporal, Redis, PostgreSQL and a real
HTTP receiver; per-user outcomes are checked against what the receiver and tables saw."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from journeys.ab import assign
from journeys.contracts.counters import Counters, RunStatus
from journeys.contracts.runs import RunOptions
from journeys.events import JourneyEvent
from journeys.names import exited_key
from journeys.plan.steps import AbSplitStep
from journeys.settings import Settings
from starter.plan_files import read_plan
from tests.engine import for_test, worker_running
from tests.journey_kit import (
    eventually,
    launch_journey,
    received_by_node,
    seed_profiles,
    send,
    shard_handle,
    shard_nodes,
    store_events,
    until_shard,
    virtual_time,
    write_journey,
    write_journey_channels,
    write_users,
)
from tests.receiver import Receiver

SPLIT_PUSH_CLICK_SMS = {
    "steps": {
        "split": {
            "type": "ab_split",
            "arms": [
                {"name": "a", "weight": 45, "next": "push_a"},
                {"name": "b", "weight": 45, "next": "push_b"},
                {"name": "holdout", "weight": 10, "control": True},
            ],
        },
        "push_a": {"type": "send", "channel": "push", "template": "hello", "next": "clicked"},
        "push_b": {
            "type": "send",
            "channel": "push",
            "template": "offer",
            "vars": {"offer": "10%"},
            "next": "clicked",
        },
        "clicked": {
            "type": "wait_for_event",
            "event": "push_clicked",
            "within": "1d",
            "on_event": "done",
            "on_timeout": "nudge",
        },
        "nudge": {"type": "send", "channel": "sms", "template": "nudge"},
        "done": {"type": "exit", "reason": "clicked"},
    }
}


async def test_split_push_wait_for_click_then_sms_to_the_rest(
    stack_settings: Settings, pool: Any, redis: aioredis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    settings = for_test(stack_settings, write_journey_channels(tmp_path, receiver_url=receiver.url))
    plan_file = write_journey(tmp_path, SPLIT_PUSH_CLICK_SMS)
    users = [f"ab-{n:04d}" for n in range(300)]
    plan = read_plan(plan_file, channels=settings.channels_file)
    split = plan.steps["split"]
    assert isinstance(split, AbSplitStep)
    arm_of = {u: split.arms[assign(split.arms, salt=plan.id, user_id=u)].name for u in users}
    exposed = {u for u in users if arm_of[u] != "holdout"}

    async with worker_running(settings), virtual_time(settings, skipping=False) as time:
        launched, handle = await launch_journey(
            settings,
            time,
            pool=pool,
            redis=redis,
            plan_file=plan_file,
            users=write_users(tmp_path, users),
        )
        run = launched.run_id
        await until_shard(
            time.client,
            run,
            lambda s: sum(w.users for w in s.waits if w.node == "clicked") == len(exposed),
        )
        by_arm = {arm: sorted(u for u in exposed if arm_of[u] == arm) for arm in ("a", "b")}
        clickers = set(by_arm["a"][:20] + by_arm["b"][:10])
        holdout_user = next(u for u in users if arm_of[u] == "holdout")
        clicks = [JourneyEvent(user_id=u, name="push_clicked") for u in sorted(clickers)]
        clicks += [
            JourneyEvent(user_id=holdout_user, name="push_clicked"),  # never got a push
            JourneyEvent(user_id="stranger", name="push_clicked"),  # not in the run
            JourneyEvent(user_id=min(clickers), name="push_opened"),  # another event
        ]
        await send(time.client, run, clicks)
        await until_shard(
            time.client, run, lambda s: s.nodes["clicked"].routes.get("event") == len(clickers)
        )
        assert received_by_node(receiver).get("nudge") is None  # nobody nudged before the end
        await time.fast_forward(shard_handle(time.client, run), timedelta(days=1, minutes=1))
        result = await handle.result()

    got = received_by_node(receiver)
    assert got["push_a"] == {u for u in exposed if arm_of[u] == "a"}
    assert got["push_b"] == {u for u in exposed if arm_of[u] == "b"}
    assert got["nudge"] == exposed - clickers  # SMS to the non-clickers only
    assert max(receiver.by_user().values()) == 2  # push + at most one SMS, never twice
    rows = await pool.fetch(
        "SELECT user_id, arm, control FROM assignments WHERE run_id = $1", launched.run_id
    )
    assert {r["user_id"]: r["arm"] for r in rows} == arm_of  # recorded, and as bucketed
    assert all(r["control"] == (r["arm"] == "holdout") for r in rows)

    assert result.status is RunStatus.COMPLETED
    totals = result.totals
    assert totals.completed == 300 and totals.exited == 0 and totals.failed == {}
    assert totals.ended == totals.targeted == 300  # every journey ended, once
    assert totals.delivered == len(exposed) + len(exposed - clickers)
    shard = await shard_nodes(settings, run)
    routes = shard["split"].routes
    assert routes == {
        arm: sum(1 for u in users if arm_of[u] == arm) for arm in ("a", "b", "holdout")
    }
    assert shard["clicked"].routes == {
        "event": len(clickers),
        "timeout": len(exposed - clickers),
    }
    assert shard["done"].entered == len(clickers)


async def test_branch_on_a_tag_and_a_behaviour_with_an_exit_rule(
    stack_settings: Settings, pool: Any, redis: aioredis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    settings = for_test(stack_settings, write_journey_channels(tmp_path, receiver_url=receiver.url))
    plan_file = write_journey(
        tmp_path,
        {
            "steps": {
                "route": {
                    "type": "branch",
                    "branches": [
                        {
                            "name": "gold",
                            "rule": {"tag": "tier", "op": "eq", "value": "gold"},
                            "next": "to_popup",
                        },
                        {
                            "name": "browsers",
                            "rule": {"event": "viewed_item", "within": "7d", "count": {"gte": 2}},
                            "next": "to_push",
                        },
                    ],
                    "else": "to_sms",
                },
                "to_popup": {"type": "send", "channel": "popup", "template": "hello"},
                "to_push": {"type": "send", "channel": "push", "template": "hello"},
                "to_sms": {"type": "send", "channel": "sms", "template": "nudge"},
            },
            "exit_criteria": [{"rule": {"tag": "opted_out", "op": "eq", "value": True}}],
        },
    )
    tag = uuid.uuid4().hex[:6]
    users = [f"br-{tag}-{n:03d}" for n in range(60)]
    gold, browsers, once, stale, opted = (
        users[0:15],
        users[15:30],
        users[30:35],
        users[35:40],
        users[40:45],
    )
    await seed_profiles(
        pool,
        {u: {"attrs": {"tier": "gold"}} for u in gold}
        | {u: {"attrs": {"opted_out": True, "tier": "gold"}} for u in opted},
    )
    now = datetime.now(UTC)
    views = [(u, now - timedelta(days=1)) for u in gold[:5] + browsers + once]
    views += [(u, now - timedelta(days=2)) for u in gold[:5] + browsers]
    views += [(u, now - timedelta(days=10 + k)) for u in stale for k in range(2)]
    await store_events(
        pool, [JourneyEvent(user_id=u, name="viewed_item", ts=ts) for u, ts in views]
    )

    async with worker_running(settings), virtual_time(settings, skipping=True) as time:
        launched, handle = await launch_journey(
            settings,
            time,
            pool=pool,
            redis=redis,
            plan_file=plan_file,
            users=write_users(tmp_path, users),
        )
        result = await handle.result()

    got = received_by_node(receiver)
    popup = await pool.fetch(
        "SELECT user_id FROM inbox WHERE message_id LIKE $1", f"{launched.run_id}:%"
    )
    assert {r["user_id"] for r in popup} == set(gold)  # gold wins over browsing
    assert got["to_push"] == set(browsers)
    assert got["to_sms"] == set(users) - set(gold) - set(browsers) - set(opted)
    assert result.totals.exited == len(opted)
    assert result.totals.completed == len(users) - len(opted)
    nodes = await shard_nodes(settings, launched.run_id)
    assert nodes["route"].routes == {"gold": 15, "browsers": 15, "else": 25}
    assert nodes["route"].exited == 5


async def test_an_exit_event_mid_wait_removes_the_user(
    stack_settings: Settings, pool: Any, redis: aioredis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    settings = for_test(stack_settings, write_journey_channels(tmp_path, receiver_url=receiver.url))
    plan_file = write_journey(
        tmp_path,
        {
            "steps": {
                "first": {"type": "send", "channel": "push", "template": "hello", "next": "pause"},
                "pause": {"type": "wait", "duration": "1d", "next": "second"},
                "second": {"type": "send", "channel": "sms", "template": "nudge"},
            },
            "exit_criteria": [{"event": "unsubscribed", "where": {"channel": ["push", "all"]}}],
        },
    )
    users = [f"ex-{n:03d}" for n in range(100)]
    leaving = set(users[::10])
    async with worker_running(settings), virtual_time(settings, skipping=False) as time:
        launched, handle = await launch_journey(
            settings,
            time,
            pool=pool,
            redis=redis,
            plan_file=plan_file,
            users=write_users(tmp_path, users),
        )
        run = launched.run_id
        await until_shard(time.client, run, lambda s: [w.users for w in s.waits] == [100])
        events = [
            JourneyEvent(user_id=u, name="unsubscribed", props={"channel": "push"})
            for u in sorted(leaving)
        ]
        # does not match the criterion's filter: this user stays
        events.append(JourneyEvent(user_id=users[1], name="unsubscribed", props={"channel": "sms"}))
        await send(time.client, run, events)
        key = exited_key(run, 0)
        await eventually(lambda: redis.zcard(key), until=lambda n: n == len(leaving))
        await time.fast_forward(shard_handle(time.client, run), timedelta(days=1, minutes=1))
        result = await handle.result()

    got = received_by_node(receiver)
    assert got["first"] == set(users)
    assert got["second"] == set(users) - leaving
    assert result.totals.exited == len(leaving)
    assert result.totals.completed == len(users) - len(leaving)
    assert result.totals.ended == len(users)
    nodes = await shard_nodes(settings, run)
    assert nodes["second"].exited == len(leaving) and nodes["pause"].entered == 100


async def test_a_goal_conversion_is_attributed_to_the_arm_and_last_message(
    stack_settings: Settings, pool: Any, redis: aioredis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    settings = for_test(stack_settings, write_journey_channels(tmp_path, receiver_url=receiver.url))
    plan_file = write_journey(
        tmp_path,
        {
            "steps": {
                "split": {
                    "type": "ab_split",
                    "arms": [
                        {"name": "a", "weight": 50, "next": "push_a"},
                        {"name": "b", "weight": 50, "next": "push_b"},
                    ],
                },
                "push_a": {"type": "send", "channel": "push", "template": "hello"},
                "push_b": {"type": "send", "channel": "push", "template": "offer"},
            },
            "goal": {"event": "purchase", "within": "3d", "value_prop": "amount"},
        },
    )
    users = [f"gl-{n:03d}" for n in range(100)]
    plan = read_plan(plan_file, channels=settings.channels_file)
    split = plan.steps["split"]
    assert isinstance(split, AbSplitStep)
    arm_of = {u: split.arms[assign(split.arms, salt=plan.id, user_id=u)].name for u in users}
    in_a = sorted(u for u in users if arm_of[u] == "a")
    in_b = sorted(u for u in users if arm_of[u] == "b")
    async with worker_running(settings), virtual_time(settings, skipping=False) as time:
        launched, handle = await launch_journey(
            settings,
            time,
            pool=pool,
            redis=redis,
            plan_file=plan_file,
            users=write_users(tmp_path, users),
        )
        run = launched.run_id
        await until_shard(time.client, run, lambda s: s.counters.completed == 100)
        now = await time.get_current_time(shard_handle(time.client, run))
        amounts = {in_a[0]: 10, in_a[1]: 20, in_a[2]: 30, in_b[0]: 5, in_b[1]: 7.5}
        purchases = [
            JourneyEvent(user_id=u, name="purchase", ts=now, props={"amount": amount})
            for u, amount in amounts.items()
        ]
        purchases += [
            # a second purchase of a converted user: the first one counts
            JourneyEvent(
                user_id=in_a[0], name="purchase", ts=now + timedelta(hours=1), props={"amount": 999}
            ),
            JourneyEvent(user_id="stranger", name="purchase", ts=now, props={"amount": 1}),
            JourneyEvent(
                user_id=in_a[3], name="purchase", ts=now + timedelta(days=4), props={"amount": 1}
            ),  # after the window
        ]
        await send(time.client, run, purchases)
        await until_shard(time.client, run, lambda s: s.counters.converted == len(amounts))
        await time.fast_forward(shard_handle(time.client, run), timedelta(days=3, minutes=1))
        result = await handle.result()

    assert result.totals.converted == 5
    assert result.totals.value == 72.5
    nodes = await shard_nodes(settings, run)
    assert nodes["split"].conversions == {"a": 3, "b": 2}
    rows = await pool.fetch(
        "SELECT user_id, arm, arm_node, value, last_message, last_node FROM conversions"
        " WHERE run_id = $1",
        run,
    )
    by_user = {r["user_id"]: r for r in rows}
    assert set(by_user) == set(amounts)
    for user, amount in amounts.items():
        row = by_user[user]
        node = f"push_{arm_of[user]}"
        assert (row["arm"], row["arm_node"], float(row["value"])) == (arm_of[user], "split", amount)
        assert (row["last_message"], row["last_node"]) == (f"{run}:{node}:{user}:0", node)


async def test_webhook_then_update_then_branch_on_the_update(
    stack_settings: Settings, pool: Any, redis: aioredis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    settings = for_test(stack_settings, write_journey_channels(tmp_path, receiver_url=receiver.url))
    plan_file = write_journey(
        tmp_path,
        {
            "steps": {
                "grant": {
                    "type": "webhook",
                    "channel": "hook",
                    "template": "grant",
                    "vars": {"coupon": "SAVE10"},
                    "next": "mark",
                },
                "mark": {
                    "type": "update",
                    "set": {"coupon": "SAVE10"},
                    "tags_add": ["couponed"],
                    "tags_remove": ["lapsed"],
                    "next": "check",
                },
                "check": {
                    "type": "branch",
                    "branches": [
                        {
                            "name": "tagged",
                            "rule": {
                                "all": [
                                    {"tag": "tags", "op": "contains", "value": "couponed"},
                                    {"not": {"tag": "tags", "op": "contains", "value": "lapsed"}},
                                ]
                            },
                            "next": "tell",
                        }
                    ],
                },
                "tell": {"type": "send", "channel": "push", "template": "hello"},
            }
        },
    )
    tag = uuid.uuid4().hex[:6]
    users = [f"up-{tag}-{n:02d}" for n in range(40)]
    known = users[:20]  # the rest have no profile yet: the update creates it
    await seed_profiles(pool, {u: {"attrs": {"tags": ["lapsed", "old"], "n": 1}} for u in known})
    async with worker_running(settings), virtual_time(settings, skipping=True) as time:
        launched, handle = await launch_journey(
            settings,
            time,
            pool=pool,
            redis=redis,
            plan_file=plan_file,
            users=write_users(tmp_path, users),
        )
        await handle.result()

    hooks = [r for r in receiver.requests if r.path == "/hook"]
    assert {r.body["user_id"] for r in hooks} == set(users)
    assert all(r.body["content"]["payload"] == {"coupon": "SAVE10"} for r in hooks)
    assert {r.headers["idempotency-key"] for r in hooks} == {
        f"{launched.run_id}:grant:{u}:0" for u in users
    }
    rows = await pool.fetch("SELECT user_id, attrs FROM users WHERE user_id = ANY($1)", users)
    attrs = {r["user_id"]: r["attrs"] for r in rows}
    assert all(attrs[u]["coupon"] == "SAVE10" for u in users)
    assert all(attrs[u]["tags"] == ["couponed", "old"] and attrs[u]["n"] == 1 for u in known)
    assert all(attrs[u]["tags"] == ["couponed"] for u in users[20:])
    assert received_by_node(receiver)["tell"] == set(users)


async def test_continue_as_new_mid_wait_loses_and_doubles_nothing(
    stack_settings: Settings, pool: Any, redis: aioredis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    settings = for_test(stack_settings, write_journey_channels(tmp_path, receiver_url=receiver.url))
    plan_file = write_journey(
        tmp_path,
        {
            "steps": {
                "split": {
                    "type": "ab_split",
                    "arms": [
                        {"name": "later", "weight": 50, "next": "hold"},
                        {"name": "now", "weight": 50, "next": "blast"},
                    ],
                },
                "hold": {"type": "wait", "duration": "1h", "next": "late"},
                "late": {"type": "send", "channel": "push", "template": "hello"},
                "blast": {"type": "send", "channel": "push", "template": "offer"},
            },
            "limits": {"page_size": 10, "concurrency": 2},
        },
    )
    users = [f"can-{n:03d}" for n in range(200)]
    options = RunOptions(continue_as_new_after_pages=3)
    async with worker_running(settings), virtual_time(settings, skipping=False) as time:
        launched, handle = await launch_journey(
            settings,
            time,
            pool=pool,
            redis=redis,
            plan_file=plan_file,
            users=write_users(tmp_path, users),
            options=options,
        )
        run = launched.run_id
        shard = shard_handle(time.client, run)
        first = await until_shard(time.client, run, lambda s: bool(s.waits))
        before = (await shard.describe()).run_id
        done = await until_shard(
            time.client, run, lambda s: s.nodes.get("blast", Counters()).entered > 0
        )
        after = (await shard.describe()).run_id
        assert after != before  # continued as new while the other arm waited
        assert done.waits == first.waits  # same cohort, same deadline, carried over
        await time.fast_forward(shard, timedelta(hours=1, minutes=1))
        result = await handle.result()

    got = received_by_node(receiver)
    assert got["late"] | got["blast"] == set(users) and not got["late"] & got["blast"]
    assert max(receiver.by_user().values()) == 1
    assert result.totals.delivered == 200 and result.totals.completed == 200
    runs = [w async for w in time.client.list_workflows(f'WorkflowId = "{shard.id}"')]
    assert len(runs) >= 3


async def test_a_flood_of_events_for_a_waiting_cohort_is_caught_in_bounded_batches(
    stack_settings: Settings, pool: Any, redis: aioredis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    settings = for_test(stack_settings, write_journey_channels(tmp_path, receiver_url=receiver.url))
    plan_file = write_journey(
        tmp_path,
        {
            "steps": {
                "hello": {"type": "send", "channel": "popup", "template": "hello", "next": "w"},
                "w": {"type": "wait_for_event", "event": "opened", "within": "1d", "on_event": "x"},
                "x": {"type": "exit", "reason": "opened"},
            },
            "limits": {"page_size": 1000, "concurrency": 4},
        },
    )
    users = [f"flood-{n:04d}" for n in range(2_500)]
    async with worker_running(settings), virtual_time(settings, skipping=False) as time:
        launched, handle = await launch_journey(
            settings,
            time,
            pool=pool,
            redis=redis,
            plan_file=plan_file,
            users=write_users(tmp_path, users),
        )
        run = launched.run_id
        await until_shard(time.client, run, lambda s: sum(w.users for w in s.waits) == 2_500)
        # one signal: every waiting user's event lands in the cohort's buffer at once
        await send(time.client, run, [JourneyEvent(user_id=u, name="opened") for u in users])
        await until_shard(time.client, run, lambda s: s.nodes["w"].routes.get("event") == 2_500)
        await time.fast_forward(shard_handle(time.client, run), timedelta(days=1, minutes=1))
        result = await handle.result()
        history = await shard_handle(time.client, run).fetch_history()

    caught = [
        len(json.loads(e.activity_task_scheduled_event_attributes.input.payloads[0].data)["users"])
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "catch_events"
    ]
    assert sum(caught) == 2_500 and max(caught) <= 1_000  # three activities, not one
    assert result.totals.completed == 2_500 and result.totals.exited == 0
