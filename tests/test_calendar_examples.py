"""The seeds' calendars, each an example plan launched as a real Temporal Schedule and run
over several occurrences: the server's own matching times show the calendar (every day at
9:00 inside a date range, every Monday at 9:00, the 8th of each month, every day for the
birthday week), and backfills of chosen occurrences, run one after the other, show what each
occurrence did: its audience read at its own time, caps and plan caps held across them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio
import redis.asyncio as aioredis
import yaml
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleBackfill,
    ScheduleOverlapPolicy,
    WorkflowHandle,
)

from activities.db.pool import DbPool
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import ControlSignal, PlanRunResult
from journeys.events import JourneyEvent
from journeys.settings import Settings
from starter.plan_files import read_plan
from starter.schedules import launch_schedule, schedule_id
from tests.engine import ROOT, client_for, for_test, worker_running
from tests.journey_kit import eventually, seed_profiles, store_events, write_example_channels
from tests.receiver import Receiver, SmtpSink
from workflows.plan_run import PlanRunWorkflow

EXAMPLES = ROOT / "examples"
SHANGHAI_9AM = timedelta(hours=1)  # 09:00 +08:00 is 01:00 UTC


def day(text: str) -> datetime:
    """Midnight UTC of ``text`` (YYYY-MM-DD)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Calendar:
    """An example plan (under an id of the test's own) launched as a schedule."""

    client: Client
    plan_id: str
    pool: DbPool
    seen: set[str]

    async def matching(self, start: datetime, end: datetime) -> list[datetime]:
        """The occurrence times the server's schedule spec gives between two moments."""
        request = ListScheduleMatchingTimesRequest(
            namespace=self.client.namespace,
            schedule_id=schedule_id(self.plan_id),
            start_time=_stamp(start),
            end_time=_stamp(end),
        )
        answer = await self.client.workflow_service.list_schedule_matching_times(request)
        return [t.ToDatetime(tzinfo=UTC) for t in answer.start_time]

    async def start(self, at: datetime) -> WorkflowHandle[PlanRunWorkflow, PlanRunResult]:
        """Run the occurrence at ``at`` now (a backfill of exactly it); its run's handle."""
        handle = self.client.get_schedule_handle(schedule_id(self.plan_id))
        await handle.backfill(
            ScheduleBackfill(
                start_at=at - timedelta(minutes=1),
                end_at=at + timedelta(minutes=1),
                overlap=ScheduleOverlapPolicy.ALLOW_ALL,
            )
        )

        async def new_runs() -> list[str]:
            recent = [a.action for a in (await handle.describe()).info.recent_actions]
            ids = {
                a.workflow_id for a in recent if isinstance(a, ScheduleActionExecutionStartWorkflow)
            }
            return sorted(ids - self.seen)

        (run_id,) = await eventually(new_runs, until=bool)
        self.seen.add(run_id)
        assert at.strftime("%Y-%m-%dT%H:%M:%S") in run_id  # the occurrence names the run
        return self.client.get_workflow_handle_for(PlanRunWorkflow.run, run_id)

    async def occurrence(self, at: datetime) -> PlanRunResult:
        """Run the occurrence at ``at`` to its end."""
        result = await (await self.start(at)).result()
        assert result.status is RunStatus.COMPLETED, result
        return result

    async def cancel(self, run: WorkflowHandle[PlanRunWorkflow, PlanRunResult]) -> None:
        """End a run that would go on (a goal window, a wait until evening)."""
        await run.signal(PlanRunWorkflow.cancel, ControlSignal())
        assert (await run.result()).status is RunStatus.CANCELLED

    async def ledger(
        self, run_id: str, users: set[str], *, node: str | None = None
    ) -> dict[str, str]:
        """Each of ``users``'s row in the run's ledger (at ``node``, for plans of several
        sends): ``sent``, or ``skipped:<reason>`` (the segment reads the shared test
        database: other tests' users may be in it)."""
        rows = await self.pool.fetch(
            "SELECT user_id, status, reason FROM deliveries WHERE run_id = $1"
            " AND user_id = ANY($2::text[]) AND ($3::text IS NULL OR node_id = $3)",
            run_id,
            sorted(users),
            node,
        )
        return {
            r["user_id"]: r["status"] if r["status"] == "sent" else f"{r['status']}:{r['reason']}"
            for r in rows
        }

    async def reached(self, run_id: str, users: set[str]) -> set[str]:
        """Those of ``users`` the run sent to."""
        return {u for u, s in (await self.ledger(run_id, users)).items() if s == "sent"}


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


@asynccontextmanager
async def calendar(
    stem: str,
    settings: Settings,
    pool: DbPool,
    tmp_path: Path,
    *,
    tag: str,
) -> AsyncIterator[Calendar]:
    """``examples/{stem}.yaml`` as it is, under the id ``{stem}-{tag}``, launched as a schedule
    with a worker; the schedule is deleted afterwards."""
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{stem}.yaml").read_text())
    body["id"] = f"{stem}-{tag}"
    plan_file = tmp_path / f"{body['id']}.yaml"
    plan_file.write_text(yaml.safe_dump(body, sort_keys=False))
    plan = read_plan(plan_file, channels=settings.channels_file)
    client = await client_for(settings)
    async with worker_running(settings):
        await launch_schedule(settings, client=client, pool=pool, plan=plan, plan_file=plan_file)
        try:
            yield Calendar(client=client, plan_id=plan.id, pool=pool, seen=set())
        finally:
            await client.get_schedule_handle(schedule_id(plan.id)).delete()


@pytest_asyncio.fixture(loop_scope="session")
async def seeded(pool: DbPool) -> AsyncIterator[list[str]]:
    """Users a test seeds; removed afterwards with their events, since the examples'
    segments (member level, push permission) read the whole shared test database."""
    users: list[str] = []
    yield users
    await pool.execute("DELETE FROM events WHERE user_id = ANY($1::text[])", users)
    await pool.execute("DELETE FROM users WHERE user_id = ANY($1::text[])", users)


def example_settings(
    stack_settings: Settings, tmp_path: Path, receiver: Receiver, *, smtp_port: int | None = None
) -> Settings:
    channels = write_example_channels(tmp_path, receiver_url=receiver.url, smtp_port=smtp_port)
    return for_test(stack_settings, channels)


async def test_daily_checkin_runs_every_day_at_nine_inside_its_date_range(
    stack_settings: Settings, pool: DbPool, receiver: Receiver, tmp_path: Path, seeded: list[str]
) -> None:
    settings = example_settings(stack_settings, tmp_path, receiver)
    tag = uuid.uuid4().hex[:6]
    members = [f"dc-{tag}-{n}" for n in range(3)]
    newcomer, no_push = f"dc-{tag}-new", f"dc-{tag}-nopush"
    seeded += [*members, newcomer, no_push]
    await seed_profiles(
        pool,
        {u: {"attrs": {"push_enabled": u != no_push}} for u in [*members, no_push]},
    )
    async with calendar("daily-checkin", settings, pool, tmp_path, tag=tag) as plan:
        # the range starts on 20 November (Shanghai): nothing before, 09:00 every day after
        times = await plan.matching(day("2026-11-17"), day("2026-11-23"))
        assert times == [day(f"2026-11-{d}") + SHANGHAI_9AM for d in (20, 21, 22)]
        assert await plan.matching(day("2027-03-01"), day("2027-03-10")) == []  # ended
        first = await plan.occurrence(day("2026-11-21") + SHANGHAI_9AM)
        await seed_profiles(pool, {newcomer: {"attrs": {"push_enabled": True}}})
        second = await plan.occurrence(day("2026-11-22") + SHANGHAI_9AM)
    mine = {*members, newcomer, no_push}
    assert await plan.ledger(first.run_id, mine) == dict.fromkeys(members, "sent")
    # evaluated again: the newcomer is in the second day's audience; the others got their
    # reminder minutes ago, and the plan's cap (one push in 20 h) holds them back
    assert await plan.ledger(second.run_id, mine) == {
        newcomer: "sent",
        **dict.fromkeys(members, "skipped:channel_cap"),
    }


async def test_birthday_week_reaches_each_user_once_in_their_week(
    stack_settings: Settings, pool: DbPool, receiver: Receiver, tmp_path: Path, seeded: list[str]
) -> None:
    settings = example_settings(stack_settings, tmp_path, receiver)
    tag = uuid.uuid4().hex[:6]
    born = {  # week of Monday 23 November 2026: the 23rd to the 29th
        "wednesday": "1990-11-25",
        "sunday": "1988-11-29",
        "last_week": "1992-11-22",  # Sunday of the week before
        "next_week": "1991-11-30",
    }
    user = {who: f"bw-{tag}-{who}" for who in born}
    seeded += list(user.values())
    await seed_profiles(
        pool,
        {user[w]: {"attrs": {"birthday": d, "push_enabled": True}} for w, d in born.items()},
    )
    async with calendar("birthday-week", settings, pool, tmp_path, tag=tag) as plan:
        times = await plan.matching(day("2026-11-22"), day("2026-11-25"))
        assert times == [day(f"2026-11-{d}") + SHANGHAI_9AM for d in (22, 23, 24)]
        sunday, monday, tuesday = [await plan.occurrence(t) for t in times]
    mine = set(user.values())
    # each day reads "this week" at its own time, not when the test ran it
    assert await plan.ledger(sunday.run_id, mine) == {user["last_week"]: "sent"}
    this_week = {user["wednesday"], user["sunday"]}
    assert await plan.ledger(monday.run_id, mine) == dict.fromkeys(this_week, "sent")
    # Tuesday's rule holds for them again; the plan cap (once in 30 days) keeps it to one
    assert await plan.ledger(tuesday.run_id, mine) == dict.fromkeys(this_week, "skipped:plan_cap")
    got = [str(m["user_id"]) for m in receiver.messages().values() if m["user_id"] in mine]
    assert sorted(got) == sorted([user["last_week"], *this_week])


async def test_weekly_digest_runs_on_mondays_over_each_weeks_behaviour(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:6]
    early, late, bought = (f"wk-{tag}-{k}" for k in ("early", "late", "bought"))
    views = {early: (3, 4, 5), late: (18, 19, 20), bought: (10, 11, 12)}
    history = [
        JourneyEvent(user_id=u, name="page_viewed", ts=day(f"2026-11-{d:02d}") + timedelta(hours=3))
        for u, days in views.items()
        for d in days
    ]
    history.append(JourneyEvent(user_id=bought, name="order_placed", ts=day("2026-11-21")))
    await store_events(pool, history)
    await seed_profiles(
        pool, {u: {"email": f"{u}@example.com", "attrs": {"email_opt_in": True}} for u in views}
    )
    with SmtpSink() as sink:
        settings = example_settings(stack_settings, tmp_path, receiver, smtp_port=sink.port)
        async with calendar("weekly-digest", settings, pool, tmp_path, tag=tag) as plan:
            times = await plan.matching(day("2026-11-14"), day("2026-12-01"))
            assert times == [day(f"2026-11-{d}") + SHANGHAI_9AM for d in (16, 23, 30)]
            assert all(t.weekday() == 0 for t in times)  # Mondays (01:00 UTC is 09:00 there)
            # each Monday looks back 14 days from itself: the 16th sees the early browser and
            # the one who ordered only later; the 23rd sees the late browser, and the order
            # on the 21st. Each run then counts conversions for 3 days (its goal): cancelled.
            for at, expected in ((times[0], {early, bought}), (times[1], {late})):
                run = await plan.start(at)

                async def sent(run_id: str = run.id) -> set[str]:
                    return await plan.reached(run_id, set(views))

                await eventually(sent, until=expected.__eq__)
                await plan.cancel(run)
        mails = {m["To"] for m in sink.mails if m["To"].startswith(f"wk-{tag}-")}
    assert mails == {f"{u}@example.com" for u in (early, bought, late)}


async def test_member_day_runs_on_the_eighth_of_each_month(
    stack_settings: Settings, pool: DbPool, receiver: Receiver, tmp_path: Path, seeded: list[str]
) -> None:
    settings = example_settings(stack_settings, tmp_path, receiver)
    tag = uuid.uuid4().hex[:6]
    members = {f"mm-{tag}-{n}": ("gold", "platinum", "silver")[n % 3] for n in range(6)}
    gold = {u for u, level in members.items() if level != "silver"}
    seeded += list(members)
    await seed_profiles(pool, {u: {"attrs": {"member_level": v}} for u, v in members.items()})
    ten = timedelta(hours=2)  # 10:00 +08:00
    async with calendar("member-day", settings, pool, tmp_path, tag=tag) as plan:
        times = await plan.matching(day("2026-09-01"), day("2026-12-01"))
        assert times == [day(f"2026-{m:02d}-08") + ten for m in (9, 10, 11)]
        for at in times[1:]:  # two member days; each waits for 19:00 after its coupon
            run = await plan.start(at)

            async def coupons_out(run_id: str = run.id) -> dict[str, str]:
                return await plan.ledger(run_id, set(members), node="grant")

            # the coupon webhook of that member day, to the gold and platinum members only
            await eventually(coupons_out, until=lambda got: got == dict.fromkeys(gold, "sent"))
            await plan.cancel(run)
    keys = [k for k, m in receiver.messages().items() if ":grant:" in k and m["user_id"] in gold]
    assert len(keys) == 2 * len(gold)  # one coupon per member per member day, none twice
