"""``wait_until`` end to end on virtual time through the journey kit: users' own zones (one
cohort per zone, with a fallback), the plan's zone on a weekday, and fixed moments ahead and
behind.

Deadlines are checked exactly: the shard computes them from its clock when the cohort arms
its timer, some instant between the launch and the moment the test sees the cohort waiting,
so the deadline must be what :func:`next_local_time` gives for one end of that interval."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import ShardSummary, WaitingCohort
from journeys.plan.models import Plan
from journeys.schedule import next_local_time
from tests.journey_kit import received_by_node, shard_handle, until_shard
from tests.journey_runner import Advance, Check, JourneyKit, JourneyOutcome, LiveRun, UntilShard
from tests.receiver import Receiver

FALLBACK = "Asia/Tokyo"
SLACK = timedelta(minutes=10)
"""A deadline this far beyond the clock cannot have fired while the test looked (time moves
only when a test fast-forwards); a nearer one might fire on real time."""


def all_waiting(total: int) -> Any:
    """A condition on a shard summary: ``total`` users stand on timers."""

    def ok(summary: ShardSummary) -> bool:
        return sum(w.users for w in summary.waits) == total

    return ok


def expected_deadlines(
    start: datetime, seen: datetime, *, at: time, zone: str, weekdays: list[str] | None = None
) -> set[datetime]:
    """Where a timer armed at some instant in ``[start, seen]`` may point: the interval is
    short, so it holds at most one boundary of the schedule, and both ends cover every case."""
    return {next_local_time(t, at=at, zone=zone, weekdays=weekdays) for t in (start, seen)}


def assert_delivered_once(
    receiver: Receiver, outcome: JourneyOutcome, users: list[str], node: str
) -> None:
    assert received_by_node(receiver) == {node: set(users)}
    counts = receiver.by_user()
    assert set(counts) == set(users)
    assert set(counts.values()) == {1}  # nobody twice
    assert all(outcome.users[u].messages == [node] for u in users)


async def waiting_now(live: LiveRun, total: int) -> tuple[ShardSummary, datetime]:
    """The shard once ``total`` users wait, and its clock then."""
    summary = await until_shard(live.time.client, live.run_id, all_waiting(total))
    seen = await live.time.get_current_time(shard_handle(live.time.client, live.run_id))
    return summary, seen


async def test_wait_until_nine_in_each_users_own_zone(journey: JourneyKit) -> None:
    tag = uuid.uuid4().hex[:6]
    in_zone = {
        "Asia/Shanghai": 5,
        "Europe/Berlin": 4,
        "America/New_York": 3,
        FALLBACK: 1,  # someone who really lives there shares the fallback's cohort
    }
    profiles: dict[str, dict[str, Any]] = {}
    zone_of: dict[str, str] = {}
    for zone, count in in_zone.items():
        for n in range(count):
            user = f"tz-{tag}-{zone.split('/')[1].lower()}-{n}"
            profiles[user] = {"timezone": zone}
            zone_of[user] = zone
    for n in range(2):  # a profile without a zone
        profiles[f"tz-{tag}-nozone-{n}"] = {"attrs": {"tier": "gold"}}
    profiles[f"tz-{tag}-bogus"] = {"timezone": "Mars/Olympus_Mons"}  # not a zone
    no_profile = f"tz-{tag}-unknown"  # in no table at all
    users = sorted([*profiles, no_profile])
    zone_of |= {u: FALLBACK for u in users if u not in zone_of}
    per_zone = Counter(zone_of.values())
    assert per_zone[FALLBACK] == 5 and len(per_zone) == 4

    async def one_cohort_per_zone_at_nine(live: LiveRun) -> None:
        summary, seen = await waiting_now(live, len(users))
        assert start <= seen
        if all(w.until - seen > SLACK for w in summary.waits):
            assert received_by_node(live.receiver) == {}  # nobody gets it before their 09:00
        waits: dict[str | None, WaitingCohort] = {w.zone: w for w in summary.waits}
        assert len(waits) == len(summary.waits)  # one cohort per zone
        assert {where: w.users for where, w in waits.items()} == dict(per_zone)
        for where, wait in waits.items():
            assert where is not None and wait.node == "morning"
            local = wait.until.astimezone(ZoneInfo(where))
            assert (local.hour, local.minute, local.second) == (9, 0, 0), (where, local)
            assert start <= wait.until <= seen + timedelta(days=1)
            assert wait.until in expected_deadlines(start, seen, at=time(9), zone=where), where
        # the same 09:00 is a different instant in every zone
        assert len({w.until for w in waits.values()}) == len(waits)

    start = datetime.now(UTC)
    outcome = await journey.run(
        {
            "steps": {
                "morning": {
                    "type": "wait_until",
                    "time": "09:00",
                    "timezone": "user",
                    "fallback_timezone": FALLBACK,
                    "next": "ping",
                },
                "ping": {"type": "send", "channel": "push", "template": "hello"},
            },
            "limits": {"page_size": 4, "concurrency": 2},  # the zone split takes a few pages
        },
        users=users,
        profiles=profiles,
        skipping=False,
        script=[Check(one_cohort_per_zone_at_nine), Advance(timedelta(days=2))],
    )

    assert_delivered_once(journey.receiver, outcome, users, "ping")
    assert outcome.paths() == {u: ["morning", "ping"] for u in users}
    result = outcome.result
    assert result.status is RunStatus.COMPLETED
    assert result.totals.delivered == len(users) and result.totals.completed == len(users)
    assert outcome.nodes["morning"].routes == dict(per_zone)
    assert outcome.nodes["morning"].entered == len(users)
    assert outcome.nodes["ping"].entered == len(users)
    assert outcome.nodes["ping"].delivered == len(users)


async def test_wait_until_monday_evening_in_the_plans_zone(journey: JourneyKit) -> None:
    berlin = "Europe/Berlin"
    users = [f"pz-{uuid.uuid4().hex[:6]}-{n:02d}" for n in range(12)]

    async def waits_for_monday_evening(live: LiveRun) -> None:
        summary, seen = await waiting_now(live, len(users))
        [wait] = summary.waits
        assert (wait.node, wait.users, wait.zone) == ("evening", len(users), None)
        local = wait.until.astimezone(ZoneInfo(berlin))
        assert local.weekday() == 0 and (local.hour, local.minute, local.second) == (20, 0, 0)
        assert start <= wait.until <= seen + timedelta(days=7)
        assert wait.until in expected_deadlines(
            start, seen, at=time(20), zone=berlin, weekdays=["mon"]
        )
        if wait.until - seen > SLACK:
            assert received_by_node(live.receiver) == {}

    start = datetime.now(UTC)
    outcome = await journey.run(
        {
            "timezone": berlin,
            "steps": {
                "evening": {
                    "type": "wait_until",
                    "time": "20:00",
                    "weekdays": ["mon"],
                    "next": "ping",
                },
                "ping": {"type": "send", "channel": "push", "template": "hello"},
            },
        },
        users=users,
        # a profile zone does not matter when the plan's zone is asked for
        profiles={users[0]: {"timezone": "Asia/Shanghai"}},
        skipping=False,
        script=[Check(waits_for_monday_evening), Advance(timedelta(days=8))],
    )

    assert_delivered_once(journey.receiver, outcome, users, "ping")
    assert outcome.paths() == {u: ["evening", "ping"] for u in users}
    assert outcome.result.status is RunStatus.COMPLETED
    assert outcome.result.totals.completed == len(users)
    assert outcome.nodes["evening"].entered == len(users)
    assert outcome.nodes["evening"].routes == {}  # no zone split in the plan's zone


async def test_wait_until_a_fixed_moment_with_an_offset(journey: JourneyKit) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    moment = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).astimezone(india)
    users = [f"at-{uuid.uuid4().hex[:6]}-{n:02d}" for n in range(10)]

    async def waits_for_the_moment(live: LiveRun) -> None:
        summary, _ = await waiting_now(live, len(users))
        [wait] = summary.waits
        assert (wait.node, wait.users, wait.zone) == ("later", len(users), None)
        assert wait.until == moment  # the same instant, whatever offset it is written in
        assert received_by_node(live.receiver) == {}

    outcome = await journey.run(
        {
            "steps": {
                "later": {"type": "wait_until", "at": moment.isoformat(), "next": "ping"},
                "ping": {"type": "send", "channel": "push", "template": "hello"},
            }
        },
        users=users,
        skipping=False,
        script=[Check(waits_for_the_moment), Advance(timedelta(days=3, minutes=1))],
    )

    assert_delivered_once(journey.receiver, outcome, users, "ping")
    assert outcome.result.status is RunStatus.COMPLETED
    assert outcome.result.totals.completed == len(users)


async def test_wait_until_a_moment_already_past_moves_on_at_once(journey: JourneyKit) -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    users = [f"past-{uuid.uuid4().hex[:6]}-{n:02d}" for n in range(10)]
    histories: list[WorkflowHistory] = []

    async def keep_history(live: LiveRun) -> None:
        shard = shard_handle(live.time.client, live.run_id)
        await shard.result()
        histories.append(await shard.fetch_history())

    outcome = await journey.run(
        {
            "steps": {
                "later": {"type": "wait_until", "at": past.isoformat(), "next": "ping"},
                "ping": {"type": "send", "channel": "push", "template": "hello"},
            }
        },
        users=users,
        script=[UntilShard(lambda s: True), Check(keep_history)],  # once the shard exists
    )

    assert_delivered_once(journey.receiver, outcome, users, "ping")
    assert outcome.result.status is RunStatus.COMPLETED
    assert outcome.result.totals.delivered == len(users)
    assert outcome.result.totals.completed == len(users)
    events = histories[0].events
    timers = [e for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert timers == []  # nothing was waited for, not even a skipped timer
    assert outcome.nodes["later"].entered == len(users)
    assert outcome.nodes["ping"].delivered == len(users)


def test_a_fixed_moment_survives_storing_as_a_version() -> None:
    """A stored version is the plan's full dump (defaults written out); it must load again."""
    plan = Plan.model_validate(
        {
            "id": "stored-at",
            "name": "Stored at",
            "entry": {"type": "immediate"},
            "audience": {"source": "list", "name": "x"},
            "steps": {"later": {"type": "wait_until", "at": "2026-06-01T09:00:00+05:30"}},
        }
    )
    assert Plan.model_validate(plan.model_dump(mode="json", by_alias=True)) == plan
