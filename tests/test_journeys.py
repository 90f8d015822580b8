"""Journeys end to end on virtual time: real worker, Temporal, Redis, PostgreSQL and a real
HTTP receiver; per-user outcomes are checked against what the receiver and tables saw."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from journeys.ab import assign
from journeys.events import JourneyEvent
from journeys.plan.steps import AbSplitStep
from journeys.settings import Settings
from starter.plan_files import read_plan
from tests.engine import for_test, worker_running
from tests.journey_kit import (
    launch_journey,
    received_by_node,
    send,
    shard_handle,
    shard_nodes,
    until_shard,
    virtual_time,
    write_journey,
    write_journey_channels,
    write_users,
)
from tests.receiver import Receiver
from workflows.models import RunStatus

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
