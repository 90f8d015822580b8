"""A running event-triggered journey under hostile input: 1,000 malformed events and entry
requests are refused at the API and never reach it; hundreds of well-formed events with
props of every wrong type reach it and are judged by its rules; it keeps running and
serves the users it should, with no workflow task failing on the way."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType

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
from tests.test_event_entries import recall_plan

ODD_VALUES: list[Any] = [
    None, 7, -1.5, True, [], ["price_too_low"], {"reason": "price_too_low"}, "", "x" * 4_000,
    "PRICE_TOO_LOW", "price_too_low ", "\u202eprice", "价格太低", 2**60, {"a": {"b": {"c": [1]}}},
]  # fmt: skip


def malformed_events(tag: str) -> list[str]:
    """Raw event batches the API must refuse whole (422 or 413), 1,000 events in all."""
    bad_fields: list[dict[str, Any]] = [
        {"name": "order_cancelled"},  # no user
        {"user_id": "", "name": "order_cancelled"},
        {"user_id": f"m-{tag}", "name": "Order Cancelled!"},
        {"user_id": f"m-{tag}", "name": "order_cancelled", "ts": "yesterday"},
        {"user_id": f"m-{tag}", "name": "order_cancelled", "props": [1, 2]},
        {"user_id": f"m-{tag}", "name": "order_cancelled", "props": {"a": "\u0000"}},
        {"user_id": f"m-{tag}", "name": "order_cancelled", "extra": 1},
        {"user_id": ["u"], "name": "order_cancelled"},
        {"user_id": f"m-{tag}", "name": "order_cancelled", "props": {"x": "y" * 20_000}},
        {"user_id": f"m-{tag}\n", "name": "order_cancelled"},
    ]
    batches = []
    for n in range(10):  # each batch: 99 good-looking events and one bad one, refused whole
        events = [
            {"user_id": f"m-{tag}-{n}-{k}", "name": "order_cancelled",
             "props": {"order_id": f"o-{k}", "reason": "price_too_low"}}
            for k in range(99)
        ]  # fmt: skip
        events.insert(n * 7, bad_fields[n])
        batches.append(json.dumps({"events": events}))
    return batches


async def test_a_running_journey_survives_hostile_events(
    journey: JourneyKit, ingest_url: str
) -> None:
    journey.use_ingest(ingest_url)
    tag = uuid.uuid4().hex[:6]
    odd: list[dict[str, Any]] = [
        {"user_id": f"h-{tag}-{n}", "name": "order_cancelled",
         "props": {"order_id": ODD_VALUES[n % len(ODD_VALUES)],
                   "reason": ODD_VALUES[(n * 7) % len(ODD_VALUES)],
                   "amount": ODD_VALUES[(n * 3) % len(ODD_VALUES)]}}
        for n in range(300)
    ]  # fmt: skip
    odd += [  # the rule's value, carried by odd order ids and amounts: these enter
        {"user_id": f"h-{tag}-in-{n}", "name": "order_cancelled",
         "props": {"order_id": ODD_VALUES[n], "reason": "price_too_low",
                   "amount": ODD_VALUES[-n - 1]}}
        for n in range(len(ODD_VALUES))
    ]  # fmt: skip
    odd += [  # and payments of every odd shape, for the wait keyed by order id
        {"user_id": f"h-{tag}-in-{n}", "name": "order_paid",
         "props": {"order_id": ODD_VALUES[n], "amount": ODD_VALUES[n]}}
        for n in range(len(ODD_VALUES))
    ]  # fmt: skip
    entering = {e["user_id"] for e in odd if e["name"] == "order_cancelled"
                and e["props"]["reason"] == "price_too_low"}  # fmt: skip

    async def refused_at_the_door(live: LiveRun) -> None:
        async with httpx.AsyncClient(base_url=ingest_url, timeout=30) as http:
            headers = {"content-type": "application/json"}
            for body in malformed_events(tag):
                answer = await http.post("/v1/events", content=body, headers=headers)
                assert answer.status_code == 422, answer.text[:300]
            for body in ('{"entries": [{"user_id": "u"}]}', "[]", "{", '{"request_id": 5}'):
                answer = await http.post(f"/v1/plans/{live.launched.plan_id}/entries",
                                         content=body, headers=headers)  # fmt: skip
                assert answer.status_code in (409, 422), answer.text[:300]
        stored = await journey.pool.fetchval(
            "SELECT count(*) FROM events WHERE user_id LIKE $1", f"m-{tag}%"
        )
        assert stored == 0

    outcome = await journey.run(
        recall_plan(datetime.now(UTC) + timedelta(hours=2)),
        users=None,
        skipping=False,
        script=[
            UntilListening("order_cancelled"),
            Check(refused_at_the_door),
            Post(odd[:200]),
            Post(odd[200:]),
            UntilShard(lambda s: s.counters.delivered == len(entering)),
            Advance(timedelta(days=1, hours=3)),
        ],
    )
    assert outcome.result.status.value == "completed"
    entered = {u for u, got in outcome.users.items() if got.paths}
    assert entered == entering and len(entering) == len(ODD_VALUES)  # no odd reason passed
    assert outcome.nodes["coupon"].delivered == len(entering)
    # every odd order id either caught its own payment or timed out: no user is lost
    paid = outcome.nodes["paid"].routes
    assert paid.get("event", 0) + paid.get("timeout", 0) == len(entering)
    client = await journey.client()
    for shard in range(outcome.plan.shards):
        history = await shard_handle(client, outcome.run_id, shard).fetch_history()
        failed = [e for e in history.events
                  if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]  # fmt: skip
        assert failed == [], shard
