"""``examples/cancelled-order-recall.yaml`` itself, end to end, tried as a new user would:
cancellations come in over the ingest API, the branch answers each cancel reason (read from the
entry event as ``entry.reason``), and every path's messages reach a real HTTP receiver or the
inbox, on virtual time (real worker, Temporal, Redis, PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from journeys.contracts.counters import Counters, RunStatus
from journeys.contracts.runs import ShardSummary
from tests.engine import ROOT
from tests.journey_kit import awake_zone, received_by_node, until_shard
from tests.journey_runner import (
    Advance,
    Cancel,
    Check,
    JourneyKit,
    LiveRun,
    Post,
    UntilListening,
    UntilShard,
)

EXAMPLE = ROOT / "examples" / "cancelled-order-recall.yaml"
WHY_ROUTES = {"price_too_low": 2, "data_wipe_hassle": 2, "dont_trust": 2, "else": 1}


def waiting_at(summary: ShardSummary, node: str) -> int:
    """Users of the shard on a timer at ``node``."""
    return sum(w.users for w in summary.waits if w.node == node)


def delivered(summary: ShardSummary, node: str) -> int:
    return summary.nodes.get(node, Counters()).delivered


async def test_cancelled_order_recall_answers_each_cancel_reason(
    journey: JourneyKit,
    ingest_url: str,
) -> None:
    journey.use_example_channels()
    journey.use_ingest(ingest_url)
    tag = uuid.uuid4().hex[:6]
    reasons = {
        "price_clicks": "price_too_low",  # opens the coupon push: no SMS
        "price_ignores": "price_too_low",  # ignores it for a day: the SMS
        "wipe_views": "data_wipe_hassle",  # opens the tutorial: no push
        "wipe_ignores": "data_wipe_hassle",  # does not within 2 days: the tutorial push
        "distrust": "dont_trust",  # a call-centre task
        "elsewhere": "dont_trust",  # resumes another order: does not count
        "other": "found_it_cheaper",  # a reason the branch does not know: generic push
        "resumer": "price_too_low",  # resumes this order within 30 minutes: no message
    }
    user = {role: f"rc-{tag}-{role}" for role in [*reasons, "platform"]}
    order = {role: f"o-{tag}-{n}" for n, role in enumerate(user)}
    phone = {role: f"+86-138-{n:04d}" for n, role in enumerate(user)}
    zone = awake_zone(EXAMPLE)  # its quiet hours are in force: send while users are awake

    def cancelled(role: str, reason: str, *, by: str = "user") -> dict[str, Any]:
        props = {
            "order_id": order[role],
            "reason": reason,
            "model": "iPhone 13",
            "cancelled_by": by,
        }
        return {"user_id": user[role], "name": "order_cancelled", "props": props}

    async def routed_by_reason(live: LiveRun) -> None:
        routed = await until_shard(
            live.time.client,
            live.run_id,
            lambda s: sum(s.nodes.get("why", Counters()).routes.values()) == 7,
        )
        # the cancel reason, read from the entry event as `entry.reason`, picks the path
        assert routed.nodes["why"].routes == WHY_ROUTES

    outcome = await journey.run(
        EXAMPLE,
        users=None,
        profiles={
            user[role]: {"phone": phone[role], "timezone": zone, "attrs": {"name": role}}
            for role in user
        },
        skipping=False,
        script=[
            UntilListening("order_cancelled"),
            Post(
                [
                    *(cancelled(role, reason) for role, reason in reasons.items()),
                    # the platform cancelled it (failed inspection): `where` keeps it out
                    cancelled("platform", "price_too_low", by="platform"),
                ]
            ),
            # one batch after flush_every (5s), then everyone waits in the undo window
            UntilShard(lambda s: waiting_at(s, "undo_window") == 8),
            Post(
                [
                    {  # the same order again: leaves at `resumed`
                        "user_id": user["resumer"],
                        "name": "order_resumed",
                        "props": {"order_id": order["resumer"]},
                    },
                    {  # another order of theirs: match_entry does not take it
                        "user_id": user["elsewhere"],
                        "name": "order_resumed",
                        "props": {"order_id": f"o-{tag}-something-else"},
                    },
                ]
            ),
            # both events came in one signal, so one catch handled them both
            UntilShard(lambda s: s.nodes["undo_window"].routes.get("event") == 1),
            Advance(timedelta(minutes=31)),
            Check(routed_by_reason),
            UntilShard(
                lambda s: (
                    waiting_at(s, "coupon_push_opened") == 2
                    and waiting_at(s, "tutorial_opened") == 2
                    and delivered(s, "open_call_task") == 2
                    and delivered(s, "generic_push") == 1
                )
            ),
            Post(
                [
                    {
                        "user_id": user["price_clicks"],
                        "name": "push_clicked",
                        "props": {"campaign": "price_bump"},
                    },
                    {  # another campaign's push: still waiting for the coupon push
                        "user_id": user["price_ignores"],
                        "name": "push_clicked",
                        "props": {"campaign": "comeback"},
                    },
                    {
                        "user_id": user["wipe_views"],
                        "name": "tutorial_viewed",
                        "props": {"tutorial": "wipe-phone"},
                    },
                ]
            ),
            UntilShard(
                lambda s: (
                    s.nodes["coupon_push_opened"].routes.get("event") == 1
                    and s.nodes["tutorial_opened"].routes.get("event") == 1
                )
            ),
            Advance(timedelta(days=2, minutes=1)),
            UntilShard(
                lambda s: (
                    delivered(s, "coupon_sms") == 1 and delivered(s, "wipe_tutorial_push") == 1
                )
            ),
            Cancel(),  # no window end: the run listens until cancelled
        ],
    )

    start = ["undo_window", "why"]
    paths = {
        "price_clicks": [*start, "grant_coupon", "coupon_push", "coupon_push_opened"],
        "price_ignores": [
            *start,
            "grant_coupon",
            "coupon_push",
            "coupon_push_opened",
            "coupon_sms",
        ],
        "wipe_views": [*start, "wipe_tutorial_banner", "tutorial_opened"],
        "wipe_ignores": [*start, "wipe_tutorial_banner", "tutorial_opened", "wipe_tutorial_push"],
        "distrust": [*start, "open_call_task"],
        "elsewhere": [*start, "open_call_task"],
        "other": [*start, "generic_push"],
        "resumer": ["undo_window", "resumed"],
    }
    sent = {
        "price_clicks": ["grant_coupon", "coupon_push"],
        "price_ignores": ["grant_coupon", "coupon_push", "coupon_sms"],
        "wipe_views": ["wipe_tutorial_banner"],
        "wipe_ignores": ["wipe_tutorial_banner", "wipe_tutorial_push"],
        "distrust": ["open_call_task"],
        "elsewhere": ["open_call_task"],
        "other": ["generic_push"],
        "resumer": [],
    }
    assert {role: outcome.users[user[role]].path for role in reasons} == paths
    assert {role: outcome.users[user[role]].messages for role in reasons} == sent
    assert user["platform"] not in outcome.users
    receiver, pool, run, result, nodes = (
        journey.receiver,
        journey.pool,
        outcome.run_id,
        outcome.result,
        outcome.nodes,
    )
    got = received_by_node(receiver)
    assert got == {
        "grant_coupon": {user["price_clicks"], user["price_ignores"]},
        "coupon_push": {user["price_clicks"], user["price_ignores"]},
        "coupon_sms": {user["price_ignores"]},
        "wipe_tutorial_push": {user["wipe_ignores"]},
        "open_call_task": {user["distrust"], user["elsewhere"]},
        "generic_push": {user["other"]},
    }
    assert max(receiver.by_user().values()) == 3  # coupon, push, SMS: each once
    messages = {
        (key.rsplit(":", 3)[1], str(m["user_id"])): m for key, m in receiver.messages().items()
    }
    assert {r.path for r in receiver.requests} == {"/coupons", "/push", "/sms", "/call_tasks"}

    coupon = messages["grant_coupon", user["price_ignores"]]
    assert coupon["channel"] == "coupons"
    assert coupon["content"]["payload"] == {
        "user_id": user["price_ignores"],
        "coupon": "price-bump",
        "amount": "50",
        "valid_days": 7,
    }
    push = messages["coupon_push", user["price_ignores"]]
    assert push["channel"] == "push" and push["template"] == "price_bump_coupon"
    assert push["content"]["url"] == f"app://orders/{order['price_ignores']}"
    assert "50 yuan" in push["content"]["body"]
    sms = messages["coupon_sms", user["price_ignores"]]
    assert sms["channel"] == "sms" and order["price_ignores"] in sms["content"]["body"]
    call = messages["open_call_task", user["distrust"]]
    assert call["channel"] == "call_tasks" and call["template"] == "distrust_callback"
    assert call["content"]["payload"] == {
        "user_id": user["distrust"],
        "phone": phone["distrust"],
        "order_id": order["distrust"],
        "reason": "dont_trust",
        "script": "distrust-reassurance",
        "priority": "high",
    }
    tutorial = messages["wipe_tutorial_push", user["wipe_ignores"]]
    assert tutorial["channel"] == "push" and tutorial["template"] == "wipe_tutorial"
    generic = messages["generic_push", user["other"]]
    assert generic["template"] == "recall_generic"
    assert "iPhone 13" in generic["content"]["body"]
    assert generic["content"]["url"] == f"app://orders/{order['other']}/requote"

    banners = await pool.fetch(
        "SELECT user_id, slot, title FROM inbox WHERE message_id LIKE $1 ORDER BY user_id",
        f"{run}:%",
    )
    assert [(r["user_id"], r["slot"]) for r in banners] == sorted(
        (user[role], "banner") for role in ("wipe_views", "wipe_ignores")
    )
    assert banners[0]["title"] == "Wipe your phone safely in 2 minutes"
    entered = await pool.fetch("SELECT user_id FROM journey_entries WHERE run_id = $1", run)
    assert {r["user_id"] for r in entered} == {user[role] for role in reasons}

    assert result.status is RunStatus.CANCELLED
    assert result.totals.targeted == 8 and result.totals.exited == 0
    assert result.totals.completed == 8 and result.totals.failed == {}
    assert nodes["undo_window"].routes == {"event": 1, "timeout": 7}
    assert nodes["resumed"].entered == 1 and nodes["resumed"].completed == 1
    assert nodes["why"].routes == WHY_ROUTES
    assert nodes["grant_coupon"].delivered == 2 and nodes["coupon_push"].delivered == 2
    assert nodes["coupon_push_opened"].routes == {"event": 1, "timeout": 1}
    assert nodes["coupon_sms"].delivered == 1
    assert nodes["wipe_tutorial_banner"].delivered == 2
    assert nodes["tutorial_opened"].routes == {"event": 1, "timeout": 1}
    assert nodes["wipe_tutorial_push"].delivered == 1
    assert nodes["open_call_task"].delivered == 2
    assert nodes["generic_push"].delivered == 1
