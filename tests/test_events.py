"""Events from product services: the HTTP API, the Python client and the CLI, end to end into
running journeys (real uvicorn server, Temporal, Redis, PostgreSQL, HTTP receiver)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from activities.db.pool import DbPool
from journeys.contracts.counters import Counters
from journeys.contracts.runs import RunOptions
from journeys.errors import EventsRefused
from journeys.events import MAX_PROPS_BYTES
from journeys.names import exited_key, listeners_key
from journeys.settings import Settings
from starter.client import Journeys
from starter.ingest.service import EventIngest
from tests.conftest import spawn_journeys
from tests.engine import client_for
from tests.journey_kit import (
    eventually,
    shard_handle,
    shard_run_inputs,
    shard_runs,
    until_shard,
)
from tests.journey_runner import Advance, Check, JourneyKit, LiveRun, UntilShard


async def stored(pool: DbPool, users: list[str]) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM events WHERE user_id = ANY($1)", users)
    return n


async def test_http_accepts_stores_and_deduplicates(ingest_url: str, pool: DbPool) -> None:
    tag = uuid.uuid4().hex[:8]
    batch = {
        "events": [
            {"user_id": f"h-{tag}-1", "name": "page_viewed", "props": {"page": "/a"}},
            {"user_id": f"h-{tag}-2", "name": "page_viewed", "ts": "2026-11-01T10:00:00+08:00"},
            {"user_id": f"h-{tag}-3", "name": "order_paid", "event_id": f"ev-{tag}"},
            {"user_id": f"h-{tag}-3", "name": "order_paid", "event_id": f"ev-{tag}"},
        ]
    }
    async with httpx.AsyncClient(base_url=ingest_url) as http:
        first = await http.post("/v1/events", json=batch)
        again = await http.post("/v1/events", json={"events": batch["events"][2:]})
        health = await http.get("/healthz")
        metrics = await http.get("/metrics")
    assert first.status_code == 202
    assert first.json() == {"accepted": 4, "duplicates": 1, "routed": 0}  # repeat in the batch
    assert again.json() == {"accepted": 2, "duplicates": 2, "routed": 0}  # a retried POST
    users = [f"h-{tag}-{n}" for n in (1, 2, 3)]
    assert await stored(pool, users) == 3
    ts = await pool.fetchval("SELECT ts FROM events WHERE user_id = $1", users[1])
    assert ts.isoformat() == "2026-11-01T02:00:00+00:00"
    assert health.status_code == 200 and health.json() == {
        "postgres": True,
        "redis": True,
        "temporal": True,
    }
    assert "journeys_ingest_accepted_events 6" in metrics.text


async def test_malformed_events_are_refused_with_reasons_and_nothing_is_stored(
    ingest_url: str, pool: DbPool
) -> None:
    tag = uuid.uuid4().hex[:8]
    good = {"user_id": f"m-{tag}", "name": "page_viewed"}
    bad = [
        {"name": "page_viewed"},
        {"user_id": f"m-{tag}", "name": "has space"},
        {"user_id": f"m-{tag}", "name": "x", "props": "not an object"},
        {"user_id": f"m-{tag}", "name": "x", "props": {"blob": "x" * MAX_PROPS_BYTES}},
        {"user_id": f"m-{tag}", "name": "x", "ts": "2026-11-01T10:00:00"},
        {"user_id": f"m-{tag}", "name": "x", "colour": "extra field"},
        "just a string",
    ]
    async with httpx.AsyncClient(base_url=ingest_url) as http:
        answer = await http.post("/v1/events", json={"events": [good, *bad]})
        too_many = await http.post("/v1/events", json={"events": [good] * 1_001})
        not_json = await http.post("/v1/events", content=b"{nope")
        no_list = await http.post("/v1/events", json={"event": good})
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert {e["index"] for e in errors} == set(range(1, len(bad) + 1))  # each bad one, once+
    fields = {e["index"]: e["field"] for e in errors}
    assert fields[1] == "user_id" and fields[2] == "name" and fields[3] == "props"
    assert fields[4] == "props" and fields[5] == "ts" and fields[6] == "colour"
    assert all(e["reason"] for e in errors)
    assert too_many.status_code == 422 and "at most 1000" in too_many.json()["errors"][0]["reason"]
    assert not_json.status_code == 422 and no_list.status_code == 422
    assert await stored(pool, [f"m-{tag}"]) == 0  # all or nothing


async def test_the_client_checks_first_and_retries_safely(ingest_url: str, pool: DbPool) -> None:
    tag = uuid.uuid4().hex[:8]
    async with Journeys(ingest_url) as journeys:
        with pytest.raises(EventsRefused) as refused:
            await journeys.send_events([{"user_id": "", "name": "x"}])
        assert refused.value.refused[0][:2] == (0, "user_id")
        events = [{"user_id": f"c-{tag}-{n}", "name": "signed_up"} for n in range(2_500)]
        report = await journeys.send_events(events)
    assert (report.accepted, report.duplicates) == (2_500, 0)  # three batches
    assert await stored(pool, [f"c-{tag}-{n}" for n in range(2_500)]) == 2_500


WAIT_FOR_CLICK = {
    "steps": {
        "push": {"type": "send", "channel": "push", "template": "hello", "next": "clicked"},
        "clicked": {
            "type": "wait_for_event",
            "event": "push_clicked",
            "within": "1d",
            "on_event": "thanks",
            "on_timeout": "nudge",
        },
        "thanks": {"type": "send", "channel": "popup", "template": "hello"},
        "nudge": {"type": "send", "channel": "sms", "template": "nudge"},
    },
    "exit_criteria": [{"event": "unsubscribed"}],
    "goal": {"event": "order_paid", "within": "2d", "value_prop": "amount"},
}


async def test_events_over_http_release_exit_and_convert_in_a_running_journey(
    journey: JourneyKit, ingest_url: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    users = [f"ev-{tag}-{n:03d}" for n in range(60)]
    clickers, leavers, buyers = users[:10], users[10:15], users[:3]
    key = listeners_key("push_clicked")

    async def events_over_http(live: LiveRun) -> None:
        assert (await journey.redis.hget(key, live.run_id)) == b"1"
        async with httpx.AsyncClient(base_url=ingest_url) as http:
            for n in range(300):  # malformed: refused to the sender, the journey carries on
                answer = await http.post(
                    "/v1/events", json={"events": [{"user_id": users[n % 60], "name": "bad name"}]}
                )
                assert answer.status_code == 422
        async with Journeys(ingest_url) as journeys:
            clicks = [
                {"user_id": u, "name": "push_clicked", "event_id": f"{live.run_id}:{u}:click"}
                for u in clickers
            ]
            first = await journeys.send_events(clicks)
            repeat = await journeys.send_events(clicks)  # a retried batch acts once
            await journeys.send_events(
                [{"user_id": u, "name": "unsubscribed"} for u in leavers]
                + [{"user_id": u, "name": "order_paid", "props": {"amount": 10}} for u in buyers]
            )
        assert first.routed == 10 and (repeat.duplicates, repeat.routed) == (10, 0)

    async def leavers_marked(live: LiveRun) -> None:
        exited = exited_key(live.run_id, 0)
        await eventually(lambda: journey.redis.zcard(exited), until=lambda n: n == 5)

    outcome = await journey.run(
        WAIT_FOR_CLICK,
        users=users,
        skipping=False,
        script=[
            UntilShard(lambda s: [w.users for w in s.waits] == [60]),
            Check(events_over_http),
            UntilShard(
                lambda s: s.nodes["clicked"].routes.get("event") == 10 and s.counters.converted == 3
            ),
            Check(leavers_marked),
            Advance(timedelta(days=2, minutes=1)),
        ],
    )

    for user in users:
        got = outcome.users[user]
        if user in clickers:
            assert (got.path, got.messages) == (["push", "clicked", "thanks"], ["push", "thanks"])
        elif user in leavers:
            assert got.exited and got.messages == ["push"]
        else:
            assert (got.path, got.messages) == (["push", "clicked", "nudge"], ["push", "nudge"])
        assert got.converted == (user in buyers)
    inbox = await journey.pool.fetch(
        "SELECT user_id FROM inbox WHERE message_id LIKE $1", f"{outcome.run_id}:%"
    )
    assert {r["user_id"] for r in inbox} == set(clickers)
    assert outcome.result.totals.exited == len(leavers) and outcome.result.totals.converted == 3
    assert await journey.redis.hget(key, outcome.run_id) is None  # it left the registry


async def test_events_arriving_across_continue_as_new_are_not_lost(
    journey: JourneyKit, ingest_url: str
) -> None:
    users = [f"cn-{uuid.uuid4().hex[:4]}-{n:03d}" for n in range(100)]
    seen: dict[str, int] = {}

    async def pings_while_the_busy_arm_pages(live: LiveRun) -> None:
        summary = await until_shard(live.time.client, live.run_id, lambda s: bool(s.waits))
        holding = seen["holding"] = summary.waits[0].users
        async with Journeys(ingest_url) as journeys:
            for start in range(0, len(users), 8):  # while the busy arm pages and renews
                await journeys.send_events(
                    [{"user_id": u, "name": "pinged"} for u in users[start : start + 8]]
                )
        done = await until_shard(
            live.time.client,
            live.run_id,
            lambda s: (  # every caught user sent, and the busy arm done paging
                s.nodes.get("blast", Counters()).entered > 0
                and s.nodes.get("ping", Counters()).routes.get("event", 0) == holding
                and s.counters.delivered + sum(s.counters.failed.values()) >= len(users)
            ),
        )
        assert done.counters.delivered == len(users)
        seen["runs"] = len(await shard_runs(live.time.client, live.run_id))

    outcome = await journey.run(
        {
            "steps": {
                "split": {
                    "type": "ab_split",
                    "arms": [
                        {"name": "hold", "weight": 50, "next": "ping"},
                        {"name": "busy", "weight": 50, "next": "blast"},
                    ],
                },
                "ping": {
                    "type": "wait_for_event",
                    "event": "pinged",
                    "within": "1d",
                    "on_event": "late",
                },
                "late": {"type": "send", "channel": "push", "template": "hello"},
                "blast": {"type": "send", "channel": "push", "template": "offer"},
            },
            "limits": {"page_size": 10, "concurrency": 1},
        },
        users=users,
        skipping=False,
        options=RunOptions(continue_as_new_after_pages=2),
        script=[Check(pings_while_the_busy_arm_pages), Advance(timedelta(days=1, minutes=1))],
    )

    for user in users:
        got = outcome.users[user]
        held = got.arms["split"] == "hold"
        assert got.path == (["split", "ping", "late"] if held else ["split", "blast"])
        assert got.messages == (["late"] if held else ["blast"])  # once each
    assert sum(1 for u in users if outcome.users[u].arms["split"] == "hold") == seen["holding"]
    assert max(journey.receiver.by_user().values()) == 1
    assert outcome.nodes["ping"].routes == {"event": seen["holding"], "timeout": 0}
    assert seen["runs"] >= 3


async def test_cli_sends_and_loads_events(
    cli_env: dict[str, str], pool: DbPool, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    sent = await spawn_journeys(
        "events",
        "send",
        "--user",
        f"cli-{tag}",
        "--name",
        "page_viewed",
        "--props",
        '{"page": "/x"}',
        "--json",
        env=cli_env,
    )
    out, err = await sent.communicate()
    assert sent.returncode == 0, err.decode()
    assert json.loads(out)["accepted"] == 1
    lines = [json.dumps({"user_id": f"cli-{tag}-{n}", "name": "signed_up"}) for n in range(3)]
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(lines) + "\n")
    loaded = await spawn_journeys("events", "load", str(good), env=cli_env)
    out, err = await loaded.communicate()
    assert loaded.returncode == 0 and "accepted 3" in out.decode()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n" + json.dumps({"user_id": "x", "name": "no good"}) + "\n")
    refused = await spawn_journeys("events", "load", str(bad), env=cli_env)
    out, err = await refused.communicate()
    assert refused.returncode != 0
    message = (out + err).decode()
    assert "events[1].name" in message and "Traceback" not in message
    users = [f"cli-{tag}"] + [f"cli-{tag}-{n}" for n in range(3)]
    assert await stored(pool, users) == 4


async def test_props_size_limit_is_the_configured_one(
    stack_settings: Settings, pool: DbPool, redis: aioredis.Redis
) -> None:
    ingest = EventIngest(
        pool=pool, redis=redis, client=await client_for(stack_settings), max_props_bytes=512
    )
    tag = uuid.uuid4().hex[:8]
    small = {"user_id": f"p-{tag}", "name": "x", "props": {"note": "y" * 400}}
    large = {"user_id": f"p-{tag}", "name": "x", "props": {"note": "y" * 600}}
    assert (await ingest.ingest([small])).accepted == 1
    with pytest.raises(EventsRefused) as refused:
        await ingest.ingest([small, large])
    assert [(i, f) for i, f, _ in refused.value.refused] == [(1, "props")]
    assert "at most 512" in refused.value.refused[0][2]
    assert await stored(pool, [f"p-{tag}"]) == 1


async def test_a_flood_of_goal_events_is_recorded_not_carried(
    journey: JourneyKit, ingest_url: str
) -> None:
    users = [f"gf-{uuid.uuid4().hex[:4]}-{n:03d}" for n in range(100)]
    padding = "x" * 2000  # 1,200 events of ~2 KB: more than one input may hold
    inputs: list[int] = []

    async def flood(live: LiveRun) -> None:
        await eventually(lambda: journey.redis.hget(listeners_key("paid"), live.run_id), until=bool)
        async with Journeys(ingest_url) as journeys:
            await journeys.send_events(
                [{"user_id": u, "name": "paid", "props": {"pad": padding}} for u in users * 12]
            )

    async def keep_inputs(live: LiveRun) -> None:
        await shard_handle(live.time.client, live.run_id).result()
        inputs.extend(await shard_run_inputs(live.time.client, live.run_id))

    outcome = await journey.run(
        {
            "steps": {"push": {"type": "send", "channel": "push", "template": "hello"}},
            "goal": {"event": "paid", "within": "1d"},
            "limits": {"page_size": 10, "concurrency": 1},
        },
        users=users,
        skipping=False,
        options=RunOptions(continue_as_new_after_pages=1),  # draining after every page
        script=[
            Check(flood),
            UntilShard(lambda s: s.counters.converted == len(users)),
            Advance(timedelta(days=1, minutes=1)),
            Check(keep_inputs),
        ],
    )

    assert all(outcome.users[u].converted for u in users)
    assert outcome.result.totals.converted == len(users)
    assert outcome.result.totals.delivered == len(users)
    assert len(inputs) >= 2
    assert max(inputs) < 512 * 1024  # the flood was recorded in batches, not carried
