"""Delivery controls end to end: real worker, Temporal (virtual time), Redis, PostgreSQL and
a real HTTP receiver. Each test reads the ledger and the receiver, not only the counters."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import yaml
from rich.console import Console, RenderableType

from activities.db.pool import DbPool
from journeys.contracts.counters import Counters, RunStatus
from journeys.contracts.runs import ControlSignal, RunOptions
from journeys.names import budget_key, quota_key, sent_history_key, shard_workflow_id
from journeys.settings import Settings
from starter.progress_view import result_table
from tests.conftest import serving_ingest, spawn_journeys
from tests.engine import (
    client_for,
    for_test,
    settings_env,
    start_blast,
    worker_running,
    write_channels,
    write_plan,
)
from tests.journey_kit import until_shard
from tests.journey_runner import Advance, Check, JourneyKit, LiveRun, Post, UntilShard
from tests.receiver import Receiver
from workflows.plan_run import PlanRunWorkflow


def rendered(renderable: RenderableType) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return " ".join(console.export_text().split())


FAST = RunOptions(page_heartbeat_timeout=timedelta(seconds=5))


async def ledger(pool: DbPool, run_id: str) -> dict[str, tuple[str, str | None]]:
    rows = await pool.fetch(
        "SELECT user_id, status, reason FROM deliveries WHERE run_id = $1", run_id
    )
    return {r["user_id"]: (r["status"], r["reason"]) for r in rows}


def write_policy(directory: Path, policy: dict[str, Any]) -> Path:
    path = directory / f"policy-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


async def test_two_plans_at_once_share_a_daily_cap(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    channels = write_channels(tmp_path, receiver_url=receiver.url)
    settings = for_test(stack_settings, channels).model_copy(
        update={"policy_file": write_policy(tmp_path, {"caps": [{"max": 1, "per": "1d"}]})}
    )
    tag = uuid.uuid4().hex[:6]
    ids = tmp_path / "ids.txt"
    people = [f"cap{tag}-{i:03d}" for i in range(300)]
    ids.write_text("".join(f"{u}\n" for u in people))
    plans = [write_plan(tmp_path, channel=ch, shards=2) for ch in ("popup", "push")]
    async with worker_running(settings):
        started = [
            await start_blast(
                settings, pool=pool, redis=redis, plan_file=p, ids_file=ids, options=FAST
            )
            for p in plans
        ]
        results = await asyncio.gather(*(handle.result() for _, handle in started))
    rows = [await ledger(pool, launched.run_id) for launched, _ in started]
    # every user got exactly one message, from one plan or the other; the other skipped it
    for user in people:
        statuses = sorted(r[user] for r in rows)
        assert statuses == [("sent", None), ("skipped", "cap")], user
    delivered = sum(r.totals.delivered for r in results)
    skipped = sum(r.totals.skipped.get("cap", 0) for r in results)
    assert (delivered, skipped) == (300, 300)
    pushed = {m["user_id"] for m in receiver.messages().values()}
    assert pushed == {u for u in people if rows[1][u][0] == "sent"}


@pytest.mark.parametrize("continue_every", [None, 2], ids=["one-run", "continue-as-new"])
async def test_quiet_hours_defer_or_drop_by_zone(
    journey: JourneyKit, continue_every: int | None
) -> None:
    # three fixed-offset zones around now: the window holds UTC (release 2-3h away) and
    # UTC+1 (release 1-2h away) but not UTC-6; a 2h max_defer drops the farther release
    now = datetime.now(UTC)
    start = (now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)).time()
    end = (now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=3)).time()
    zones = {"utc": "Etc/UTC", "plus1": "Etc/GMT-1", "minus6": "Etc/GMT+6"}
    people = {f"q{name}-{i}": zone for name, zone in zones.items() for i in range(5)}
    journey.use_policy({"fallback_zone": "UTC"})
    quiet = {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}", "mode": "defer", "max_defer": "2h"}
    outcome = await journey.run(
        {
            "steps": {"hello": {"type": "send", "channel": "push", "template": "hello"}},
            "limits": {"page_size": 5, "concurrency": 2, "quiet_hours": quiet},
        },
        users=list(people),
        profiles={u: {"timezone": z} for u, z in people.items()},
        options=RunOptions(continue_as_new_after_pages=continue_every),
    )
    rows = await ledger(journey.pool, outcome.run_id)
    by_zone: dict[str, Counter[tuple[str, str | None]]] = {}
    for user, zone in people.items():
        by_zone.setdefault(zone, Counter())[rows[user]] += 1
    assert by_zone == {
        "Etc/UTC": Counter({("skipped", "quiet_hours"): 5}),  # release too far: dropped
        "Etc/GMT-1": Counter({("sent", None): 5}),  # held, then sent when the window ended
        "Etc/GMT+6": Counter({("sent", None): 5}),  # outside the window: sent at once
    }
    totals = outcome.result.totals
    assert (totals.delivered, totals.skipped, totals.deferred) == (10, {"quiet_hours": 5}, 5)
    assert totals.deferred_by == {"quiet_hours": 5}
    # the summary `journeys status` prints for an ended run names the reason
    assert "deferred 5 (quiet_hours 5)" in rendered(result_table(outcome.result))
    received = {m["user_id"] for m in journey.receiver.messages().values()}
    assert received == {u for u, z in people.items() if z != "Etc/UTC"}
    assert outcome.nodes["hello"].entered == 15  # the held users are not counted twice
    if continue_every is not None:  # the held cohort and its timer crossed continue-as-new
        client = await journey.client()
        shard = shard_workflow_id(outcome.run_id, 0)
        runs = [w async for w in client.list_workflows(f'WorkflowId = "{shard}"')]
        assert len(runs) >= 2


async def test_a_budget_runs_out_while_failed_sends_give_their_place_back(
    journey: JourneyKit,
) -> None:
    people = [f"bud-{i:03d}" for i in range(100)]
    journey.receiver.permanent_for = set(people[:10])  # the first page fails for good
    outcome = await journey.run(
        {
            "steps": {"hello": {"type": "send", "channel": "push", "template": "hello"}},
            "limits": {
                "page_size": 10,
                "concurrency": 1,
                "budget": [{"channel": "push", "max_messages": 60}],
            },
        },
        users=people,
    )
    totals = outcome.result.totals
    assert totals.delivered == 60  # the ten failures did not use up the budget
    assert sum(totals.failed.values()) == 10 and totals.skipped == {"budget": 30}
    rows = await ledger(journey.pool, outcome.run_id)
    assert Counter(status for status, _ in rows.values()) == Counter(
        {"sent": 60, "failed": 10, "skipped": 30}
    )
    assert len(journey.receiver.messages()) == 60


async def test_a_workspace_quota_runs_out_across_plans(journey: JourneyKit) -> None:
    await journey.redis.delete(quota_key("push"))
    journey.use_policy({"quotas": [{"channel": "push", "max_messages": 25}]})
    send = {"hello": {"type": "send", "channel": "push", "template": "hello"}}
    limits = {"page_size": 10, "concurrency": 1}
    try:
        first = await journey.run(
            {"steps": send, "limits": limits}, users=[f"quo1-{i:02d}" for i in range(20)]
        )
        budget = [{"channel": "push", "max_messages": 100}]
        second = await journey.run(
            {"steps": send, "limits": {**limits, "budget": budget}},
            users=[f"quo2-{i:02d}" for i in range(20)],
        )
        env = settings_env(journey.settings)
        proc = await spawn_journeys("budget", "show", second.run_id, "--json", env=env)
        out, err = await proc.communicate()
    finally:
        await journey.redis.delete(quota_key("push"))
    assert first.result.totals.delivered == 20 and not first.result.totals.skipped
    # the pack is the workspace's: the second plan gets what the first left
    assert (second.result.totals.delivered, second.result.totals.skipped) == (5, {"quota": 15})
    rows = await ledger(journey.pool, second.run_id)
    assert Counter(rows.values()) == Counter({("sent", None): 5, ("skipped", "quota"): 15})
    assert proc.returncode == 0, err.decode()
    shown = {(r["kind"], r["channel"]): (r["spent"], r["remaining"]) for r in json.loads(out)}
    assert shown == {("quota", "push"): (25, 0), ("budget", "push"): (5, 95)}


async def test_suppression_by_event_and_by_api_mid_run(journey: JourneyKit) -> None:
    # the policy names the workspace's own unsubscribe event and its channel property
    journey.use_policy({"suppression": {"event": "opted_out", "channel_property": "medium"}})
    async with serving_ingest(journey.settings) as ingest_url:  # knows the kit's channels
        await suppressed_mid_run(journey, ingest_url)


async def suppressed_mid_run(journey: JourneyKit, ingest_url: str) -> None:
    journey.use_ingest(ingest_url)
    tag = uuid.uuid4().hex[:6]
    people = [f"sup{tag}-{i:02d}" for i in range(20)]
    everywhere, sms_only, by_api, sly = people[:3], people[3:5], people[5], people[6]
    freed, tester, default_name = people[7], people[8], people[9]

    async def suppress_by_api(_: LiveRun) -> None:
        async with httpx.AsyncClient(base_url=ingest_url) as http:
            bad = await http.post("/v1/suppressions", json={"user_ids": ["bad\u0001id"]})
            assert bad.status_code == 422  # refused to its sender, nothing marked
            good = await http.post(
                "/v1/suppressions", json={"user_ids": [by_api], "channel": "push"}
            )
            assert good.status_code == 200 and good.json() == {"changed": 1}
            unknown = await http.post(
                "/v1/suppressions", json={"user_ids": [by_api], "channel": "fax"}
            )
            assert unknown.status_code == 422  # a mark on no channel would stop nothing
            # marked, then unmarked: sent as if never suppressed
            for path in ("/v1/suppressions", "/v1/suppressions/remove"):
                answer = await http.post(path, json={"user_ids": [freed]})
                assert answer.status_code == 200 and answer.json() == {"changed": 1}, path
            allowed = await http.post(
                "/v1/suppressions", json={"user_ids": [tester], "allow": True}
            )
            assert allowed.status_code == 200 and allowed.json() == {"changed": 1}

    outcome = await journey.run(
        {
            "steps": {
                "pause": {"type": "wait", "duration": "1h", "next": "hello"},
                "hello": {"type": "send", "channel": "push", "template": "hello"},
            },
        },
        users=people,
        skipping=False,
        script=[
            UntilShard(lambda s: s.nodes.get("pause", Counters()).entered == 20),
            Post(
                [{"user_id": u, "name": "opted_out"} for u in everywhere]
                + [
                    {"user_id": u, "name": "opted_out", "props": {"medium": "sms"}}
                    for u in sms_only
                ]
                # not a channel name: suppressed everywhere, never made a test user
                + [{"user_id": sly, "name": "opted_out", "props": {"medium": "+allow"}}]
                # the default name is only an event here: it suppresses no one
                + [{"user_id": default_name, "name": "unsubscribed"}]
            ),
            Check(suppress_by_api),
            Advance(timedelta(hours=1, minutes=1)),
        ],
    )
    rows = await ledger(journey.pool, outcome.run_id)
    stopped = {u for u, (status, _) in rows.items() if status == "skipped"}
    assert stopped == {*everywhere, by_api, sly}
    assert {rows[u] for u in stopped} == {("skipped", "suppressed")}
    assert outcome.result.totals.skipped == {"suppressed": 5}
    # unsubscribed from sms only: push still reaches them
    assert {m["user_id"] for m in journey.receiver.messages().values()} == set(people) - stopped
    marks = await journey.pool.fetch(
        "SELECT user_id, list, channel, source FROM suppressions WHERE user_id = ANY($1)", people
    )
    allows = [r["user_id"] for r in marks if r["list"] == "allow"]
    assert allows == [tester]  # allowed as a test user (a test user still gets the message)
    marks = [r for r in marks if r["list"] == "suppress"]
    assert sorted((r["user_id"], r["channel"], r["source"]) for r in marks) == sorted(
        [(u, "*", "event:opted_out") for u in [*everywhere, sly]]
        + [(u, "sms", "event:opted_out") for u in sms_only]
        + [(by_api, "push", "api")]
    )


async def test_the_higher_priority_plan_gets_the_capped_slot_in_either_start_order(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    policy = {"caps": [{"max": 1, "per": "1d"}], "arbitration": "10s"}
    channels = write_channels(tmp_path, receiver_url=receiver.url)
    settings = for_test(stack_settings, channels).model_copy(
        update={"policy_file": write_policy(tmp_path, policy)}
    )
    async with worker_running(settings):
        for order in ((50, 70), (70, 50)):
            tag = uuid.uuid4().hex[:6]
            ids = tmp_path / f"ids-{tag}.txt"
            people = [f"prio{tag}-{i:04d}" for i in range(1000)]
            ids.write_text("".join(f"{u}\n" for u in people))
            started = {}
            for priority in order:  # launched a second or so apart, the first one first
                plan = write_plan(tmp_path, channel="popup", shards=2, priority=priority)
                started[priority] = await start_blast(
                    settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=FAST
                )
            results = {p: await handle.result() for p, (_, handle) in started.items()}
            high = await ledger(pool, started[70][0].run_id)
            low = await ledger(pool, started[50][0].run_id)
            assert set(high.values()) == {("sent", None)} and len(high) == 1000, order
            assert {status for status, _ in low.values()} == {"skipped"}, order
            # outbid while both waited, or over the cap once the winner had confirmed
            assert {reason for _, reason in low.values()} <= {"priority", "cap"}, order
            assert results[70].totals.delivered == 1000 and results[50].totals.delivered == 0
            assert results[50].totals.deferred == 1000  # each user bid, then lost
            assert results[50].totals.deferred_by == {"arbitration": 1000}


async def test_a_cancelled_run_gives_back_what_its_waiting_users_reserved(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    tag = uuid.uuid4().hex[:6]
    people = [f"cancel{tag}-{i:02d}" for i in range(30)]
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"{u}\n" for u in people))
    receiver.status_for = dict.fromkeys(people, 503)  # every send fails, to be tried again
    plan = write_plan(
        tmp_path,
        channel="push",
        shards=1,
        page_size=10,
        budget=[{"channel": "push", "max_messages": 100}],
        caps=[{"max": 1, "per": "1d"}],
        retry={"attempts": 3, "backoff": "1h"},
    )
    async with worker_running(settings):
        launched, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=FAST
        )
        key = budget_key(launched.run_id, "push")
        client = await client_for(settings)
        await until_shard(client, launched.run_id, lambda s: s.counters.retrying == 30)
        assert await redis.hget(key, "n") == b"30"  # each holds its slot meanwhile
        await handle.signal(PlanRunWorkflow.cancel, ControlSignal())
        result = await handle.result()
    assert result.status is RunStatus.CANCELLED and result.totals.cancelled == 30
    assert await redis.hget(key, "n") == b"0"
    pipe = redis.pipeline(transaction=False)
    for user in people:
        pipe.zcard(sent_history_key(user))
    assert set(await pipe.execute()) == {0}  # their cap slots are free for other plans
