"""Winning paths (``ab_split.winner``) through the real stack in the time-skipping
environment: a blast that splits a test share and sends the rest to the arm that won, one
where no arm wins and the rest go to the fallback (never the control), and an
event-triggered plan whose later entrants go to the winner once it is significant."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from journeys.ab import assign
from journeys.events import JourneyEvent
from journeys.plan.steps import AbSplitStep
from journeys.winner import DEFAULT_TEST_SHARE, in_test
from starter.plan_files import read_plan
from starter.report import run_report
from tests.journey_runner import (
    Advance,
    Cancel,
    JourneyKit,
    Post,
    Send,
    UntilListening,
    UntilRun,
    UntilShard,
)

PUSH_A = {"type": "send", "channel": "push", "template": "offer", "vars": {"offer": "A"}}
PUSH_B = {"type": "send", "channel": "push", "template": "offer", "vars": {"offer": "B"}}
GOAL = {"event": "order_placed", "within": "2d"}


def split_of(journey: JourneyKit, body: dict[str, Any]) -> tuple[Any, AbSplitStep]:
    plan_file = journey.plan_file(body)
    split = read_plan(plan_file, channels=None).steps["split"]
    assert isinstance(split, AbSplitStep)
    return plan_file, split


def arm_of(split: AbSplitStep, user: str) -> str:
    return split.arms[assign(split.arms, salt=split.salt or "", user_id=user)].name


async def test_a_blast_sends_the_rest_to_the_arm_that_won(journey: JourneyKit) -> None:
    tag = uuid.uuid4().hex[:6]
    users = [f"wp-{tag}-{n:03d}" for n in range(300)]
    plan_file, split = split_of(
        journey,
        {
            "steps": {
                "split": {
                    "type": "ab_split",
                    "arms": [
                        {"name": "a", "weight": 50, "next": "push_a"},
                        {"name": "b", "weight": 50, "next": "push_b"},
                    ],
                    "winner": {"metric": "conversion", "after": "1h", "min_confidence": 0.95},
                },
                "push_a": PUSH_A,
                "push_b": PUSH_B,
            },
            "goal": GOAL,
        },
    )
    salt = split.salt or ""
    tested = [u for u in users if in_test(salt, u, share=DEFAULT_TEST_SHARE)]
    held = [u for u in users if u not in tested]
    by_arm = {arm: [u for u in tested if arm_of(split, u) == arm] for arm in ("a", "b")}
    assert len(by_arm["a"]) >= 15 and len(by_arm["b"]) >= 15 and len(held) > 150
    buyers = by_arm["b"][:12] + by_arm["a"][:1]
    outcome = await journey.run(
        plan_file,
        users=users,
        skipping=False,
        script=[
            UntilShard(lambda s: s.counters.delivered == len(tested)),
            Send([JourneyEvent(user_id=u, name="order_placed") for u in buyers]),
            UntilShard(lambda s: s.counters.converted == len(buyers)),
            Advance(timedelta(hours=1, minutes=1)),  # the held users' wait ends
            UntilShard(lambda s: s.counters.delivered == len(users)),
            Advance(timedelta(days=2, minutes=1)),  # the goal window closes
        ],
    )
    paths = outcome.paths()
    assert {u: paths[u] for u in held} == {u: ["split", "push_b"] for u in held}
    assert Counter(tuple(paths[u]) for u in tested) == Counter(
        {("split", "push_a"): len(by_arm["a"]), ("split", "push_b"): len(by_arm["b"])}
    )
    row = await journey.pool.fetchrow(
        "SELECT arm, significant, figures FROM winners WHERE run_id = $1", outcome.run_id
    )
    assert row is not None and (row["arm"], row["significant"]) == ("b", True)
    assert row["figures"]["p_value"] < 0.05 and row["figures"]["best"] == "b"

    report = await run_report(journey.pool, await journey.client(), outcome.run_id)
    a, b = report.splits["split"]
    assert (a.users, b.users) == (len(by_arm["a"]), len(by_arm["b"]))  # the test only
    assert (a.converted, b.converted) == (1, 12)
    # b's path also carried the held users; its messages count only those the test split
    assert (a.messages, b.messages) == (len(by_arm["a"]), len(by_arm["b"]))
    decided = report.winners["split"]
    assert (decided.arm, decided.significant, decided.sent_to_winner) == ("b", True, len(held))


async def test_with_no_winner_the_rest_go_to_the_fallback_never_the_control(
    journey: JourneyKit,
) -> None:
    tag = uuid.uuid4().hex[:6]
    users = [f"wf-{tag}-{n:03d}" for n in range(120)]
    plan_file, split = split_of(
        journey,
        {
            "steps": {
                "split": {
                    "type": "ab_split",
                    "arms": [
                        {"name": "holdout", "weight": 20, "control": True},
                        {"name": "a", "weight": 40, "next": "push_a"},
                        {"name": "b", "weight": 40, "next": "push_b"},
                    ],
                    "winner": {
                        "metric": "click",
                        "after": "30m",
                        "test_share": 50,
                        "fallback": "b",
                    },
                },
                "push_a": PUSH_A,
                "push_b": PUSH_B,
            },
        },
    )
    salt = split.salt or ""
    held = [u for u in users if not in_test(salt, u, share=50)]
    sent_first = [u for u in users if u not in held and arm_of(split, u) != "holdout"]
    outcome = await journey.run(
        plan_file,
        users=users,
        skipping=False,
        script=[
            UntilShard(lambda s: s.counters.delivered == len(sent_first)),
            Advance(timedelta(minutes=31)),
            UntilShard(lambda s: s.counters.delivered == len(sent_first) + len(held)),
        ],
    )
    paths = outcome.paths()
    assert {u: paths[u] for u in held} == {u: ["split", "push_b"] for u in held}
    row = await journey.pool.fetchrow(
        "SELECT arm, significant, metric FROM winners WHERE run_id = $1", outcome.run_id
    )
    assert row is not None
    assert (row["arm"], row["significant"], row["metric"]) == ("b", False, "click")


async def test_later_entrants_go_to_the_winner_once_it_is_significant(
    journey: JourneyKit, ingest_url: str
) -> None:
    journey.use_ingest(ingest_url)
    tag = uuid.uuid4().hex[:6]
    first = [f"we-{tag}-{n:03d}" for n in range(80)]
    later = [f"we-{tag}-late-{n:02d}" for n in range(20)]
    plan_file, split = split_of(
        journey,
        {
            "entry": {"type": "event", "event": "signed_up", "flush_every": "200ms"},
            "steps": {
                "split": {
                    "type": "ab_split",
                    "arms": [
                        {"name": "a", "weight": 50, "next": "push_a"},
                        {"name": "b", "weight": 50, "next": "push_b"},
                    ],
                    "winner": {"metric": "conversion", "after": "1h"},
                },
                "push_a": PUSH_A,
                "push_b": PUSH_B,
            },
            "goal": GOAL,
        },
    )
    in_b = [u for u in first if arm_of(split, u) == "b"]
    assert len(in_b) >= 20
    outcome = await journey.run(
        plan_file,
        users=None,
        skipping=False,
        script=[
            UntilListening("signed_up"),
            Post([{"user_id": u, "name": "signed_up"} for u in first]),
            UntilRun(lambda p: p.totals.delivered == len(first)),
            Post([{"user_id": u, "name": "order_placed"} for u in in_b[:15]]),
            UntilShard(lambda s: s.counters.converted == 15),
            Advance(timedelta(hours=1, minutes=1)),
            Post([{"user_id": u, "name": "signed_up"} for u in later]),
            UntilRun(lambda p: p.totals.delivered == len(first) + len(later)),
            Cancel(),
        ],
    )
    paths = outcome.paths()
    assert {u: paths[u] for u in later} == {u: ["split", "push_b"] for u in later}
    assert any(paths[u] == ["split", "push_a"] for u in first)  # before: both arms
    row = await journey.pool.fetchrow(
        "SELECT arm, significant FROM winners WHERE run_id = $1", outcome.run_id
    )
    assert row is not None and (row["arm"], row["significant"]) == ("b", True)
