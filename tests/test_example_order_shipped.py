"""``examples/order-shipped.yaml`` itself, end to end: the order service enters users over the
API (``POST /v1/plans/order-shipped/entries``) with each order's context, templates read it
as ``entry.*``, a keyed wait matches the receipt to the entry's order, and the plan, being
transactional, sends through a workspace cap and quiet hours that stop marketing plans (real
worker, Temporal, Redis, PostgreSQL, HTTP receiver; virtual time for the shard)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from journeys.contracts.counters import Counters
from journeys.contracts.runs import ShardSummary
from tests.engine import ROOT
from tests.journey_kit import eventually, received_by_node
from tests.journey_runner import (
    Advance,
    Cancel,
    JourneyKit,
    Post,
    Trigger,
    UntilListening,
    UntilShard,
)

EXAMPLE = ROOT / "examples" / "order-shipped.yaml"


def delivered(summary: ShardSummary, node: str) -> int:
    return summary.nodes.get(node, Counters()).delivered


def quiet_now() -> dict[str, str]:
    """Quiet hours (UTC) from two hours ago to six hours on: in force for the whole test,
    and again at the same time three days later."""
    now = datetime.now(UTC)
    return {
        "start": (now - timedelta(hours=2)).strftime("%H:%M"),
        "end": (now + timedelta(hours=6)).strftime("%H:%M"),
        "mode": "defer",
    }


async def test_order_shipped_notices_come_from_api_entries(
    journey: JourneyKit, ingest_url: str
) -> None:
    journey.use_example_channels()
    journey.use_ingest(ingest_url)
    # a marketing plan under this policy sends one message a day and none now
    journey.use_policy({"caps": [{"max": 1, "per": "1d"}], "quiet_hours": [quiet_now()]})
    tag = uuid.uuid4().hex[:6]
    roles = ["receives", "other_receipt", "ignores", "twice"]
    user = {role: f"os-{tag}-{role}" for role in roles}
    order = {role: f"o-{tag}-{n}" for n, role in enumerate(roles)}

    def shipped(role: str, *, order_id: str | None = None) -> dict[str, Any]:
        context = {
            "order_id": order_id or order[role],
            "carrier": "SF Express",
            "tracking_no": f"SF{tag}{role}",
        }
        return {"user_id": user[role], "context": context}

    request = f"ship-{tag}"
    outcome = await journey.run(
        EXAMPLE,
        users=None,
        profiles={
            u: {"phone": f"+86-139-{n:04d}", "timezone": "UTC"} for n, u in enumerate(user.values())
        },
        skipping=False,
        script=[
            UntilListening("_entry:order-shipped"),
            Trigger([shipped(role) for role in roles], request_id=request),
            Trigger([shipped(role) for role in roles], request_id=request),  # a retry: no-op
            UntilShard(lambda s: delivered(s, "shipped_push") == 4),
            # a second parcel while the first is on its way: re-entry is when_absent
            Trigger([shipped("twice", order_id=f"o-{tag}-later")], request_id=f"{request}-2"),
            UntilShard(lambda s: sum(s.counters.skipped.values()) == 1),
            Post(
                [
                    {
                        "user_id": user["receives"],
                        "name": "order_received",
                        "props": {"order_id": order["receives"]},
                    },
                    {  # some other order of theirs: the wait is keyed on the entry's order
                        "user_id": user["other_receipt"],
                        "name": "order_received",
                        "props": {"order_id": f"o-{tag}-unrelated"},
                    },
                ]
            ),
            UntilShard(lambda s: s.nodes["received"].routes.get("event") == 1),
            Advance(timedelta(days=3, minutes=1)),
            UntilShard(lambda s: delivered(s, "waiting_sms") == 3),
            Cancel(),  # an API entry has no window end here: it listens until cancelled
        ],
    )

    assert {role: outcome.users[user[role]].messages for role in roles} == {
        "receives": ["shipped_push"],
        "other_receipt": ["shipped_push", "waiting_sms"],
        "ignores": ["shipped_push", "waiting_sms"],
        "twice": ["shipped_push", "waiting_sms"],
    }
    assert all(outcome.users[u].paths.keys() == {1} for u in user.values())  # one entry each
    assert outcome.result.totals.skipped == {"entry: re-entry (when_absent)": 1}
    assert outcome.result.totals.deferred == 0  # quiet hours and the cap never held them
    got = received_by_node(journey.receiver)
    assert got["waiting_sms"] == {user["other_receipt"], user["ignores"], user["twice"]}
    messages = {
        (key.rsplit(":", 3)[1], str(m["user_id"])): m
        for key, m in journey.receiver.messages().items()
    }
    push = messages["shipped_push", user["twice"]]["content"]
    assert push["body"] == f"Order {order['twice']} left our warehouse with SF Express."
    assert push["url"] == f"app://orders/{order['twice']}/tracking"
    sms = messages["waiting_sms", user["ignores"]]["content"]["body"]
    assert f"Parcel SF{tag}ignores for order {order['ignores']}" in sms
    assert max(journey.receiver.by_user().values()) == 2  # the retried request sent nothing
    # reported apart from marketing: the run and its shard carry JourneyKind
    client = await journey.client()
    query = 'JourneyKind = "transactional" AND JourneyPlanId = "order-shipped"'

    async def found() -> set[str]:
        return {w.id async for w in client.list_workflows(query)}

    await eventually(found, until=lambda ids: {outcome.run_id, f"{outcome.run_id}/shard/0"} <= ids)
