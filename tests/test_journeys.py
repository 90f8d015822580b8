"""Journeys end to end on virtual time through the journey kit (real worker, Temporal, Redis,
PostgreSQL and a real HTTP receiver): each user's path, messages and exits are checked against
what the run left in Redis and the tables, and what the receiver saw."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from journeys.ab import assign
from journeys.contracts.counters import Counters, RunStatus
from journeys.contracts.runs import RunOptions
from journeys.events import JourneyEvent
from journeys.names import exited_key
from journeys.plan.steps import AbSplitStep
from tests.journey_kit import eventually, received_by_node, shard_handle, until_shard
from tests.journey_runner import Advance, Check, JourneyKit, LiveRun, Send, UntilShard

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


def arms_of(body: Mapping[str, Any], users: list[str]) -> dict[str, str]:
    """Each user's arm at the plan's ``split`` node, as the product buckets it."""
    plan_id = str(body["id"])
    steps = body["steps"]
    assert isinstance(steps, dict)
    split = AbSplitStep.model_validate(steps["split"])
    return {u: split.arms[assign(split.arms, salt=plan_id, user_id=u)].name for u in users}


async def test_split_push_wait_for_click_then_sms_to_the_rest(journey: JourneyKit) -> None:
    body = {"id": f"jny-{uuid.uuid4().hex[:8]}", **SPLIT_PUSH_CLICK_SMS}
    users = [f"ab-{n:04d}" for n in range(300)]
    arm_of = arms_of(body, users)
    exposed = {u for u in users if arm_of[u] != "holdout"}
    by_arm = {arm: sorted(u for u in exposed if arm_of[u] == arm) for arm in ("a", "b")}
    clickers = set(by_arm["a"][:20] + by_arm["b"][:10])
    holdout_user = next(u for u in users if arm_of[u] == "holdout")
    clicks = [JourneyEvent(user_id=u, name="push_clicked") for u in sorted(clickers)]
    clicks += [
        JourneyEvent(user_id=holdout_user, name="push_clicked"),  # never got a push
        JourneyEvent(user_id="stranger", name="push_clicked"),  # not in the run
        JourneyEvent(user_id=min(clickers), name="push_opened"),  # another event
    ]

    async def nobody_nudged_yet(live: LiveRun) -> None:
        assert received_by_node(live.receiver).get("nudge") is None

    outcome = await journey.run(
        body,
        users=users,
        skipping=False,
        script=[
            UntilShard(
                lambda s: sum(w.users for w in s.waits if w.node == "clicked") == len(exposed)
            ),
            Send(clicks),
            UntilShard(lambda s: s.nodes["clicked"].routes.get("event") == len(clickers)),
            Check(nobody_nudged_yet),
            Advance(timedelta(days=1, minutes=1)),
        ],
    )

    for user in users:
        arm, got = arm_of[user], outcome.users[user]
        assert got.arms == {"split": arm}  # recorded, and as bucketed
        if arm == "holdout":
            assert got.path == ["split"] and got.messages == []
        elif user in clickers:
            assert got.path == ["split", f"push_{arm}", "clicked", "done"]
            assert got.messages == [f"push_{arm}"]
        else:
            assert got.path == ["split", f"push_{arm}", "clicked", "nudge"]
            assert got.messages == [f"push_{arm}", "nudge"]  # an SMS to non-clickers only
    assert "stranger" not in outcome.users
    assert outcome.result.status is RunStatus.COMPLETED
    totals = outcome.result.totals
    assert totals.completed == 300 and totals.exited == 0 and totals.failed == {}
    assert totals.ended == totals.targeted == 300  # every journey ended, once
    assert totals.delivered == len(exposed) + len(exposed - clickers)
    assert outcome.nodes["split"].routes == {
        arm: sum(1 for u in users if arm_of[u] == arm) for arm in ("a", "b", "holdout")
    }
    assert outcome.nodes["clicked"].routes == {
        "event": len(clickers),
        "timeout": len(exposed - clickers),
    }
    assert outcome.nodes["clicked"].entered == len(exposed)
    assert outcome.nodes["done"].entered == len(clickers)


async def test_branch_on_a_tag_and_a_behaviour_with_an_exit_rule(journey: JourneyKit) -> None:
    tag = uuid.uuid4().hex[:6]
    users = [f"br-{tag}-{n:03d}" for n in range(60)]
    gold, browsers, once, stale, opted = (
        users[0:15],
        users[15:30],
        users[30:35],
        users[35:40],
        users[40:45],
    )
    now = datetime.now(UTC)
    views = [(u, now - timedelta(days=1)) for u in gold[:5] + browsers + once]
    views += [(u, now - timedelta(days=2)) for u in gold[:5] + browsers]
    views += [(u, now - timedelta(days=10 + k)) for u in stale for k in range(2)]
    outcome = await journey.run(
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
        users=users,
        profiles={u: {"attrs": {"tier": "gold"}} for u in gold}
        | {u: {"attrs": {"opted_out": True, "tier": "gold"}} for u in opted},
        history=[JourneyEvent(user_id=u, name="viewed_item", ts=ts) for u, ts in views],
    )

    expected = dict.fromkeys(users, "to_sms") | dict.fromkeys(gold, "to_popup")
    expected |= dict.fromkeys(browsers, "to_push")  # gold wins over browsing
    for user in users:
        got = outcome.users[user]
        if user in opted:
            assert got.exited and got.path == ["route"] and got.messages == []
        else:
            assert not got.exited
            assert got.path == ["route", expected[user]]
            assert got.messages == [expected[user]]
    popup = await journey.pool.fetch(
        "SELECT user_id FROM inbox WHERE message_id LIKE $1", f"{outcome.run_id}:%"
    )
    assert {r["user_id"] for r in popup} == set(gold)  # the popup is the inbox row
    assert outcome.result.totals.exited == len(opted)
    assert outcome.result.totals.completed == len(users) - len(opted)
    assert outcome.nodes["route"].routes == {"gold": 15, "browsers": 15, "else": 25}
    assert outcome.nodes["route"].exited == 5


async def test_an_exit_event_mid_wait_removes_the_user(journey: JourneyKit) -> None:
    users = [f"ex-{n:03d}" for n in range(100)]
    leaving = set(users[::10])
    events = [
        JourneyEvent(user_id=u, name="unsubscribed", props={"channel": "push"})
        for u in sorted(leaving)
    ]
    # does not match the criterion's filter: this user stays
    events.append(JourneyEvent(user_id=users[1], name="unsubscribed", props={"channel": "sms"}))

    async def marked(live: LiveRun) -> None:
        key = exited_key(live.run_id, 0)
        await eventually(lambda: journey.redis.zcard(key), until=lambda n: n == len(leaving))

    outcome = await journey.run(
        {
            "steps": {
                "first": {"type": "send", "channel": "push", "template": "hello", "next": "pause"},
                "pause": {"type": "wait", "duration": "1d", "next": "second"},
                "second": {"type": "send", "channel": "sms", "template": "nudge"},
            },
            "exit_criteria": [{"event": "unsubscribed", "where": {"channel": ["push", "all"]}}],
        },
        users=users,
        skipping=False,
        script=[
            UntilShard(lambda s: [w.users for w in s.waits] == [100]),
            Send(events),
            Check(marked),
            Advance(timedelta(days=1, minutes=1)),
        ],
    )

    for user in users:
        got = outcome.users[user]
        assert got.exited == (user in leaving)
        assert got.messages == (["first"] if user in leaving else ["first", "second"])
        assert got.path == ["first", "pause", "second"]  # leavers were dropped at second
    totals = outcome.result.totals
    assert totals.exited == len(leaving)
    assert totals.completed == len(users) - len(leaving)
    assert totals.ended == len(users)
    assert outcome.nodes["second"].exited == len(leaving)
    assert outcome.nodes["pause"].entered == 100


async def test_a_goal_conversion_is_attributed_to_the_arm_and_last_message(
    journey: JourneyKit,
) -> None:
    body = {
        "id": f"jny-{uuid.uuid4().hex[:8]}",
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
    }
    users = [f"gl-{n:03d}" for n in range(100)]
    arm_of = arms_of(body, users)
    in_a = sorted(u for u in users if arm_of[u] == "a")
    in_b = sorted(u for u in users if arm_of[u] == "b")
    amounts = {in_a[0]: 10, in_a[1]: 20, in_a[2]: 30, in_b[0]: 5, in_b[1]: 7.5}

    async def purchase(live: LiveRun) -> None:
        # at the shard's own (virtual) time: the goal window counts from its entry
        now = await live.time.get_current_time(shard_handle(live.time.client, live.run_id))
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
        await journey.send(live, purchases)

    outcome = await journey.run(
        body,
        users=users,
        skipping=False,
        script=[
            UntilShard(lambda s: s.counters.completed == 100),
            Check(purchase),
            UntilShard(lambda s: s.counters.converted == len(amounts)),
            Advance(timedelta(days=3, minutes=1)),
        ],
    )

    assert {u for u, got in outcome.users.items() if got.converted} == set(amounts)
    for user in users:
        assert outcome.users[user].messages == [f"push_{arm_of[user]}"]
    assert outcome.result.totals.converted == 5
    assert outcome.result.totals.value == 72.5
    assert outcome.nodes["split"].conversions == {"a": 3, "b": 2}
    rows = await journey.pool.fetch(
        "SELECT user_id, arm, arm_node, value, last_message, last_node FROM conversions"
        " WHERE run_id = $1",
        outcome.run_id,
    )
    by_user = {r["user_id"]: r for r in rows}
    for user, amount in amounts.items():
        row = by_user[user]
        node = f"push_{arm_of[user]}"
        assert (row["arm"], row["arm_node"], float(row["value"])) == (arm_of[user], "split", amount)
        assert (row["last_message"], row["last_node"]) == (
            f"{outcome.run_id}:{node}:{user}:0",
            node,
        )


async def test_webhook_then_update_then_branch_on_the_update(journey: JourneyKit) -> None:
    tag = uuid.uuid4().hex[:6]
    users = [f"up-{tag}-{n:02d}" for n in range(40)]
    known = users[:20]  # the rest have no profile yet: the update creates it
    outcome = await journey.run(
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
        users=users,
        profiles={u: {"attrs": {"tags": ["lapsed", "old"], "n": 1}} for u in known},
    )

    assert outcome.paths() == {u: ["grant", "mark", "check", "tell"] for u in sorted(users)}
    hooks = [r for r in journey.receiver.requests if r.path == "/hook"]
    assert {r.body["user_id"] for r in hooks} == set(users)
    assert all(r.body["content"]["payload"] == {"coupon": "SAVE10"} for r in hooks)
    assert {r.headers["idempotency-key"] for r in hooks} == {
        f"{outcome.run_id}:grant:{u}:0" for u in users
    }
    rows = await journey.pool.fetch(
        "SELECT user_id, attrs FROM users WHERE user_id = ANY($1)", users
    )
    attrs = {r["user_id"]: r["attrs"] for r in rows}
    assert all(attrs[u]["coupon"] == "SAVE10" for u in users)
    assert all(attrs[u]["tags"] == ["couponed", "old"] and attrs[u]["n"] == 1 for u in known)
    assert all(attrs[u]["tags"] == ["couponed"] for u in users[20:])
    assert all(outcome.users[u].messages == ["grant", "tell"] for u in users)


async def test_continue_as_new_mid_wait_loses_and_doubles_nothing(journey: JourneyKit) -> None:
    users = [f"can-{n:03d}" for n in range(100)]
    seen: dict[str, object] = {}

    async def continued_while_waiting(live: LiveRun) -> None:
        shard = shard_handle(live.time.client, live.run_id)
        first = await until_shard(live.time.client, live.run_id, lambda s: bool(s.waits))
        before = (await shard.describe()).run_id
        done = await until_shard(
            live.time.client,
            live.run_id,
            lambda s: s.nodes.get("blast", Counters()).entered > 0,
        )
        assert (await shard.describe()).run_id != before  # continued as new while waiting
        assert done.waits == first.waits  # same cohort, same deadline, carried over
        seen["shard"] = shard.id

    outcome = await journey.run(
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
        users=users,
        skipping=False,
        options=RunOptions(continue_as_new_after_pages=3),
        script=[Check(continued_while_waiting), Advance(timedelta(hours=1, minutes=1))],
    )

    for user in users:
        got = outcome.users[user]
        later = got.arms["split"] == "later"
        assert got.path == (["split", "hold", "late"] if later else ["split", "blast"])
        assert got.messages == (["late"] if later else ["blast"])  # once, never twice
    assert max(journey.receiver.by_user().values()) == 1
    assert outcome.result.totals.delivered == 100 and outcome.result.totals.completed == 100
    client = await journey.client()
    runs = [w async for w in client.list_workflows(f'WorkflowId = "{seen["shard"]}"')]
    assert len(runs) >= 3


async def test_a_flood_of_events_for_a_waiting_cohort_is_caught_in_bounded_batches(
    journey: JourneyKit,
) -> None:
    users = [f"flood-{n:04d}" for n in range(2_500)]
    histories = []

    async def keep_history(live: LiveRun) -> None:
        histories.append(await shard_handle(live.time.client, live.run_id).fetch_history())

    outcome = await journey.run(
        {
            "steps": {
                "hello": {"type": "send", "channel": "popup", "template": "hello", "next": "w"},
                "w": {"type": "wait_for_event", "event": "opened", "within": "1d", "on_event": "x"},
                "x": {"type": "exit", "reason": "opened"},
            },
            "limits": {"page_size": 1000, "concurrency": 4},
        },
        users=users,
        skipping=False,
        script=[
            UntilShard(lambda s: sum(w.users for w in s.waits) == 2_500),
            # one signal: every waiting user's event lands in the cohort's buffer at once
            Send([JourneyEvent(user_id=u, name="opened") for u in users]),
            UntilShard(lambda s: s.nodes["w"].routes.get("event") == 2_500),
            Advance(timedelta(days=1, minutes=1)),
            Check(keep_history),
        ],
    )

    caught = [
        len(json.loads(e.activity_task_scheduled_event_attributes.input.payloads[0].data)["users"])
        for e in histories[0].events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "catch_events"
    ]
    assert sum(caught) == 2_500 and max(caught) <= 1_000  # three activities, not one
    assert outcome.result.totals.completed == 2_500 and outcome.result.totals.exited == 0
    assert outcome.paths() == {u: ["hello", "w", "x"] for u in sorted(users)}
