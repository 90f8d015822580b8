"""API-triggered entry: ``POST /v1/plans/{plan_id}/entries``, ``Journeys.trigger`` and
``journeys trigger`` enter users into a running plan with a context; entry rules read it,
the daily limit holds, a request id acts once, and a request that cannot act is refused
whole with its reason (real services; the checks of the request body without them)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from activities.db import plan_store
from activities.db.pool import DbPool
from journeys.errors import NotFound, NotListening
from journeys.events import api_entry_event
from journeys.plan.models import Plan
from journeys.triggers import parse_trigger, trigger_event_id
from starter.client import Journeys
from tests.conftest import spawn_journeys
from tests.journey_kit import eventually
from tests.journey_runner import (
    Cancel,
    Check,
    JourneyKit,
    LiveRun,
    Trigger,
    UntilListening,
    UntilShard,
)

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_a_request_becomes_one_entry_event_per_user() -> None:
    body = {
        "request_id": "r-1",
        "entries": [
            {"user_id": "u1", "context": {"order_id": "o-1"}},
            {"user_id": "u2"},
        ],
    }
    events, problems = parse_trigger("order-shipped", body, now=NOW)
    assert problems == []
    assert [(e.user_id, e.name, e.props, e.ts) for e in events] == [
        ("u1", "_entry:order-shipped", {"order_id": "o-1"}, NOW),
        ("u2", "_entry:order-shipped", {}, NOW),
    ]
    # the id is the (plan, request, user): the same request again, the same ids
    again, _ = parse_trigger("order-shipped", body, now=NOW)
    assert [e.event_id for e in again] == [e.event_id for e in events]
    assert events[0].event_id == trigger_event_id("order-shipped", "r-1", "u1")
    assert trigger_event_id("other-plan", "r-1", "u1") != events[0].event_id
    assert len({trigger_event_id("p", "r-1", u) for u in ("u1", "u2")}) == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"entries": [{"user_id": "u"}]}, [(-1, "request_id", "Field required")]),
        ({"request_id": "r", "entries": []}, [(-1, "entries", "at least 1 item")]),
        (
            {"request_id": "r", "entries": [{"user_id": "u"}] * 1001},
            [(-1, "entries", "at most 1000 items")],
        ),
        (
            {"request_id": "r", "entries": [{"user_id": "u", "ctx": {}}]},
            [(0, "ctx", "Extra inputs are not permitted")],
        ),
        (
            {"request_id": "r", "entries": [{"user_id": "u"}, {"user_id": "a\nb"}]},
            [(1, "user_id", "control characters")],
        ),
        (
            {"request_id": "r", "entries": [{"user_id": "u", "context": {"x": [float("nan")]}}]},
            [(0, "context.x.0", "finite number")],
        ),
        (
            {"request_id": "r", "entries": [{"user_id": "u", "context": {"x": "y" * 20_000}}]},
            [(0, "context", "bytes as JSON, at most 16384")],
        ),
        ({"request_id": 7, "entries": [{"user_id": "u"}]}, [(-1, "request_id", "string")]),
    ],
)
def test_a_malformed_request_names_the_entry_field_and_reason(
    body: object, expected: list[tuple[int, str, str]]
) -> None:
    events, problems = parse_trigger("p", body, now=NOW)
    assert events == []
    found = [(p.index, p.field, p.reason) for p in problems]
    assert [(i, f) for i, f, _ in found] == [(i, f) for i, f, _ in expected]
    for (_, _, reason), (_, _, part) in zip(found, expected, strict=True):
        assert part in reason


async def stored_triggers(pool: DbPool, plan_id: str) -> int:
    count = await pool.fetchval(
        "SELECT count(*) FROM events WHERE name = $1", api_entry_event(plan_id)
    )
    return int(count)


async def test_requests_that_cannot_act_are_refused_and_store_nothing(
    pool: DbPool, ingest_url: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    idle = f"idle-{tag}"
    plan = Plan.model_validate(
        {
            "id": idle,
            "name": "Not launched",
            "entry": {"type": "api"},
            "steps": {"hi": {"type": "send", "channel": "push", "template": "hello"}},
        }
    )
    await plan_store.publish(pool, plan, source="test")
    one = {"request_id": "r", "entries": [{"user_id": "u"}]}
    async with httpx.AsyncClient(base_url=ingest_url) as http:
        unknown = await http.post(f"/v1/plans/nothing-{tag}/entries", json=one)
        not_running = await http.post(f"/v1/plans/{idle}/entries", json=one)
        malformed = await http.post(
            f"/v1/plans/{idle}/entries",
            content=b'{"request_id": "r", "entries": [{"user_id": "u", "context": 5}]}',
        )
        reserved = await http.post(
            "/v1/events", json={"events": [{"user_id": "u", "name": f"_entry:{idle}"}]}
        )
    assert unknown.status_code == 404 and "no published version" in unknown.text
    assert not_running.status_code == 409
    [why] = not_running.json()["errors"]
    assert why["field"] == "plan_id" and "no running run that takes API entries" in why["reason"]
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["field"] == "context"
    assert reserved.status_code == 422
    assert reserved.json()["errors"][0]["field"] == "name"
    assert "reserved for API entries" in reserved.json()["errors"][0]["reason"]
    assert await stored_triggers(pool, idle) == 0
    async with Journeys(ingest_url) as client:
        with pytest.raises(NotListening, match="no running run"):
            await client.trigger(idle, user_id="u")
        with pytest.raises(NotFound):
            await client.trigger(f"nothing-{tag}", user_id="u")


async def test_entry_rule_daily_limit_and_request_ids_hold_for_every_caller(
    journey: JourneyKit, ingest_url: str, cli_env: dict[str, str]
) -> None:
    journey.use_ingest(ingest_url)
    tag = uuid.uuid4().hex[:6]
    plan_id = f"api-{tag}"
    gold = [f"ae-{tag}-gold-{n}" for n in range(5)]
    silver = f"ae-{tag}-silver"
    late = [f"ae-{tag}-late-{n}" for n in range(2)]

    def entry(user: str, tier: str = "gold") -> dict[str, Any]:
        return {"user_id": user, "context": {"tier": tier, "order_id": f"o-{user}"}}

    async def cli_and_client(live: LiveRun) -> None:
        # the command line and the Python client go the same way; the day's 3 are taken
        proc = await spawn_journeys(
            "trigger",
            plan_id,
            "--user",
            late[0],
            "--context",
            '{"tier": "gold"}',
            "--json",
            env=cli_env,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert json.loads(out) == {"accepted": 1, "duplicates": 0, "routed": 1}
        async with Journeys(ingest_url) as client:
            report = await client.trigger(plan_id, user_id=late[1], context={"tier": "gold"})
        assert (report.accepted, report.routed) == (1, 1)

    outcome = await journey.run(
        {
            "id": plan_id,
            "entry": {
                "type": "api",
                "rule": {"tag": "entry.tier", "op": "eq", "value": "gold"},
                "daily_limit": 3,
                "flush_every": "200ms",
            },
            "steps": {"coupon": {"type": "send", "channel": "push", "template": "recall"}},
        },
        users=None,
        skipping=False,
        script=[
            UntilListening(api_entry_event(plan_id)),
            Trigger([*(entry(u) for u in gold), entry(silver, "silver")], request_id="r1"),
            UntilShard(lambda s: s.counters.delivered == 3),
            Trigger([entry(u) for u in gold], request_id="r1"),  # sent again: acts once
            Check(cli_and_client),
            UntilShard(lambda s: s.counters.skipped.get("entry: daily limit") == 4),
            Cancel(),  # no window: the run takes entries until cancelled
        ],
    )

    totals = outcome.result.totals
    assert (totals.targeted, totals.delivered) == (3, 3)
    assert totals.skipped == {"entry: entry rule": 1, "entry: daily limit": 4}
    sent = journey.receiver.messages()
    assert len(sent) == 3 and {str(m["user_id"]) for m in sent.values()} < set(gold)
    for message in sent.values():  # the context reached the template as the entry's props
        assert message["content"]["body"] == f"for o-{message['user_id']}"
    assert await stored_triggers(journey.pool, plan_id) == 8  # r1 once, the CLI, the client


async def test_a_closed_entry_window_is_refused_though_the_run_goes_on(
    journey: JourneyKit, ingest_url: str
) -> None:
    journey.use_ingest(ingest_url)
    tag = uuid.uuid4().hex[:6]
    plan_id = f"api-closed-{tag}"
    end = datetime.now(UTC) + timedelta(seconds=3)

    async def after_the_window(live: LiveRun) -> None:
        # the run still runs (its user waits an hour); the window, on the wall clock, is shut
        await eventually(lambda: _now(), until=lambda now: now > end)
        async with Journeys(ingest_url) as client:
            with pytest.raises(NotListening, match="window open"):
                await client.trigger(plan_id, user_id=f"late-{tag}")
        assert await stored_triggers(journey.pool, plan_id) == 1  # the refused one is not

    outcome = await journey.run(
        {
            "id": plan_id,
            "entry": {"type": "api", "flush_every": "100ms", "window": {"end": end.isoformat()}},
            "steps": {
                "later": {"type": "wait", "duration": "1h", "next": "hi"},
                "hi": {"type": "send", "channel": "push", "template": "hello"},
            },
        },
        users=None,
        skipping=False,
        script=[
            UntilListening(api_entry_event(plan_id)),
            Trigger([{"user_id": f"early-{tag}"}], request_id="r1"),
            UntilShard(lambda s: s.counters.targeted == 1),
            Check(after_the_window),
            Cancel(),
        ],
    )
    assert outcome.result.totals.targeted == 1


async def _now() -> datetime:
    return datetime.now(UTC)
