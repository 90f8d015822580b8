"""``deliver_page`` to an inbox channel: the page is recorded and written in one statement.

Runs the activity itself (temporalio's ActivityEnvironment) against the real PostgreSQL and
Redis, so each case can look at the rows a page leaves behind and run the page again.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from temporalio.testing import ActivityEnvironment

from activities.channels.message import idempotency_key
from activities.channels.render import Renderer, user_fields
from activities.db import queries
from activities.db.pool import DbPool
from activities.delivery import DeliveryActivities
from journeys.contracts.pages import DeliverPageInput, DeliverPageOutput
from tests.test_channels import channels_file, runtime

POPUP = {
    "type": "in_app",
    "provider": {"kind": "inbox", "slot": "banner"},
    "templates": {
        # the title reads no user: rendered once per page; the body fails for a bad profile
        "promo": {
            "title": "Sale {{ vars.pct }}%",
            "body": "{{ user.first_name }}: {{ 100 // (user.n | default(1)) }}",
        },
        "broken": {"title": "{{ 1 // 0 }}", "body": "never"},
        # every field differs by user: no row can take the page's title or data
        "personal": {
            "title": "For {{ user.first_name | default('you') }}",
            "body": "b",
            "url": "https://x.test/{{ user.first_name | default('-') }}",
        },
    },
}


def page_input(run: str, users: list[str], **fields: Any) -> DeliverPageInput:
    base: dict[str, Any] = {
        "run_id": run,
        "plan_id": "p",
        "shard": 0,
        "shards": 1,
        "node": "hello",
        "channel": "popup",
        "template": "promo",
        "vars": {"pct": 20},
        "cohort_key": f"{run}:cohort",
        "page": 0,
        "page_size": len(users),
        "attempt": 1,
        "max_attempts": 3,
        "retry_key": f"{run}:retry",
        "passed_key": f"{run}:passed",
    }
    return DeliverPageInput(**{**base, **fields})


async def deliver(pool: DbPool, redis: aioredis.Redis, data: DeliverPageInput) -> DeliverPageOutput:
    async with runtime({"popup": POPUP}, pool=pool) as channels:
        activities = DeliveryActivities(pool=pool, redis=redis, channels=channels)
        out: DeliverPageOutput = await ActivityEnvironment().run(activities.deliver_page, data)
        return out


async def setup(pool: DbPool, redis: aioredis.Redis, *, users: int) -> tuple[str, list[str]]:
    run = f"inbox-{uuid.uuid4().hex[:8]}"
    ids = [f"{run}-u{i}" for i in range(users)]
    await redis.zadd(f"{run}:cohort", dict.fromkeys(ids, 0))
    # u1 has a profile whose n is zero: their body cannot render
    await pool.execute(
        queries.USERS_UPSERT,
        [ids[0], ids[1]],
        [None, None],
        [None, None],
        [None, None],
        [{"first_name": "Ann", "n": 4}, {"first_name": "Bo", "n": 0}],
    )
    return run, ids


async def statuses(pool: DbPool, run: str) -> Counter[str]:
    rows = await pool.fetch("SELECT status FROM deliveries WHERE run_id = $1", run)
    return Counter(r["status"] for r in rows)


async def inbox_rows(pool: DbPool, run: str) -> list[Any]:
    return list(
        await pool.fetch(
            "SELECT message_id, user_id, title, body, slot, data FROM inbox "
            "WHERE starts_with(message_id, $1) ORDER BY message_id",
            f"{run}:",
        )
    )


async def test_a_page_is_sent_and_settled_in_one_write_and_a_replay_adds_nothing(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    run, ids = await setup(pool, redis, users=5)
    data = page_input(run, ids)

    first = await deliver(pool, redis, data)
    replay = await deliver(pool, redis, data)  # the same pass again: a retried activity

    assert first == replay
    assert first.counters.delivered == 4 and first.passed == 4 and first.retry == 0
    [(reason, count)] = first.counters.failed.items()
    assert count == 1 and reason == "template error"  # the category; the row has the story
    assert await statuses(pool, run) == Counter({"sent": 4, "failed": 1})
    rows = await inbox_rows(pool, run)
    assert [r["user_id"] for r in rows] == sorted(set(ids) - {ids[1]})
    ann = next(r for r in rows if r["user_id"] == ids[0])
    assert (ann["title"], ann["body"], ann["slot"]) == ("Sale 20%", "Ann: 25", "banner")
    assert ann["message_id"] == idempotency_key(run, "hello", ids[0])
    assert (ann["data"]["template"], ann["data"]["vars"]) == ("promo", {"pct": 20})
    settled = await pool.fetchrow(
        "SELECT status, provider_id, sent_at FROM deliveries WHERE idempotency_key = $1",
        ann["message_id"],
    )
    assert settled is not None
    assert settled["status"] == "sent" and settled["provider_id"] == ann["message_id"]
    assert settled["sent_at"] is not None
    passed = cast(list[bytes], await redis.zrange(f"{run}:passed", 0, -1))
    assert sorted(p.decode() for p in passed) == sorted(set(ids) - {ids[1]})

    later = await deliver(pool, redis, data.model_copy(update={"attempt": 2}))
    assert later.counters.delivered == 0 and later.counters.failed == {}  # counted by pass 1
    assert len(await inbox_rows(pool, run)) == 4


async def test_a_first_try_that_finds_some_rows_written_sends_only_the_others(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    # e.g. a page issued again after its shard continued-as-new: a plain insert of the whole
    # page hits the rows already there, and the page falls back to the conflict-checked write
    run, ids = await setup(pool, redis, users=5)
    await deliver(pool, redis, page_input(run, ids[:2], page_size=2))
    assert len(await inbox_rows(pool, run)) == 1  # ids[1] cannot render

    out = await deliver(pool, redis, page_input(run, ids))

    assert out.counters.delivered == 4 and sum(out.counters.failed.values()) == 1
    assert await statuses(pool, run) == Counter({"sent": 4, "failed": 1})
    assert [r["user_id"] for r in await inbox_rows(pool, run)] == sorted(set(ids) - {ids[1]})


async def test_rows_an_earlier_version_left_pending_are_sent_once(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    run, ids = await setup(pool, redis, users=3)
    keys = [idempotency_key(run, "hello", u) for u in ids]
    # what the claim of the two-step path leaves when its worker dies before sending
    await pool.fetch(queries.DELIVERIES_CLAIM, keys[2:], ids[2:], run, "hello", [0], "popup", 1)

    out = await deliver(pool, redis, page_input(run, ids))

    assert out.counters.delivered == 2 and sum(out.counters.failed.values()) == 1
    assert await statuses(pool, run) == Counter({"sent": 2, "failed": 1})
    assert [r["user_id"] for r in await inbox_rows(pool, run)] == [ids[0], ids[2]]


async def test_titles_and_data_that_differ_by_user_are_kept_per_row(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    run, ids = await setup(pool, redis, users=3)  # ids[0] is Ann, ids[1] Bo, ids[2] has none

    out = await deliver(pool, redis, page_input(run, ids, template="personal"))

    assert out.counters.delivered == 3
    rows = {r["user_id"]: r for r in await inbox_rows(pool, run)}
    assert [rows[u]["title"] for u in ids] == ["For Ann", "For Bo", "For you"]
    assert [rows[u]["data"]["url"] for u in ids] == [
        f"https://x.test/{n}" for n in ("Ann", "Bo", "-")
    ]
    assert {rows[u]["data"]["template"] for u in ids} == {"personal"}


async def test_failures_of_one_reason_add_up_across_both_paths(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    run, ids = await setup(pool, redis, users=3)
    # ids[2] cannot render either, and an earlier version left its row pending: its failure
    # is counted by the send path, ids[1]'s by the one-statement write, under one reason
    await pool.execute(
        queries.USERS_UPSERT, [ids[2]], [None], [None], [None], [{"first_name": "Cy", "n": 0}]
    )
    key = idempotency_key(run, "hello", ids[2])
    await pool.fetch(queries.DELIVERIES_CLAIM, [key], [ids[2]], run, "hello", [0], "popup", 1)

    out = await deliver(pool, redis, page_input(run, ids))

    [(reason, count)] = out.counters.failed.items()
    assert reason == "template error" and count == 2
    assert out.counters.delivered == 1
    assert await statuses(pool, run) == Counter({"sent": 1, "failed": 2})


async def test_a_template_that_fails_for_everyone_fails_every_message(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    run, ids = await setup(pool, redis, users=3)

    out = await deliver(pool, redis, page_input(run, ids, template="broken"))

    assert out.counters.delivered == 0
    assert out.counters.failed == {"template error": 3}
    assert await statuses(pool, run) == Counter({"failed": 3})
    reasons = await pool.fetch("SELECT DISTINCT reason FROM deliveries WHERE run_id = $1", run)
    assert [r["reason"] for r in reasons] == [
        "template error: popup.broken.title: ZeroDivisionError: integer division or modulo by zero"
    ]
    assert await inbox_rows(pool, run) == []


def test_fields_that_read_no_user_render_once_per_page(monkeypatch: pytest.MonkeyPatch) -> None:
    renderer = Renderer(channels_file({"popup": POPUP}))
    rendered: list[str] = []
    run = Renderer.run

    def counting(self: Renderer, where: str, compiled: Any, context: dict[str, Any]) -> str:
        rendered.append(where)
        return run(self, where, compiled, context)

    monkeypatch.setattr(Renderer, "run", counting)
    prepared = renderer.prepare("popup", "promo", vars={"pct": 5})
    users = [user_fields(f"u{n}", attrs={"first_name": f"U{n}", "n": n + 1}) for n in range(3)]
    contents = [prepared.render_user(user) for user in users]

    assert contents == [
        {"title": "Sale 5%", "body": "U0: 100"},
        {"title": "Sale 5%", "body": "U1: 50"},
        {"title": "Sale 5%", "body": "U2: 33"},
    ]
    assert Counter(rendered) == {"popup.promo.title": 1, "popup.promo.body": 3}
    assert renderer.reads_recipient("popup", "promo", "title", "{{ vars.pct }}") is False
    assert renderer.reads_recipient("popup", "promo", "payload", {"x": ["{{ event.id }}"]}) is True
