"""Rules on pages see "today" in the plan's zone, as segments do: an anniversary branch at
11:00 UTC on 1 March picks the 2 March birthdays for a plan in Pacific/Kiritimati (UTC+14)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from temporalio.testing import ActivityEnvironment

from activities.db.pool import DbPool
from activities.journey.routing import RoutingActivities
from journeys.contracts.pages import RoutePageInput
from journeys.names import cohort_key
from journeys.plan.steps import BranchStep
from journeys.route_names import ELSE, branch_route
from tests.journey_kit import seed_profiles

NOW = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(("zone", "chosen"), [("Pacific/Kiritimati", "march2"), ("UTC", "march1")])
async def test_anniversary_branch_uses_the_plan_zone(
    pool: DbPool, redis: aioredis.Redis, zone: str, chosen: str
) -> None:
    s = uuid.uuid4().hex[:8]
    users = {"march1": f"pz-{s}-1", "march2": f"pz-{s}-2"}
    await seed_profiles(
        pool,
        {
            users["march1"]: {"attrs": {"birthday": "1990-03-01"}},
            users["march2"]: {"attrs": {"birthday": "1991-03-02"}},
        },
    )
    run = f"plan/pz-{s}/v1/k"
    key = cohort_key(run, 0, "start")
    await redis.zadd(key, dict.fromkeys(users.values(), 0))
    step = BranchStep.model_validate(
        {
            "branches": [
                {"name": "today", "rule": {"tag": "birthday", "op": "anniversary", "value": "day"}}
            ]
        }
    )
    data = RoutePageInput(
        run_id=run,
        shard=0,
        node="bday",
        step=step,
        cohort_key=key,
        page=0,
        page_size=10,
        out_prefix="bday",
        now=NOW,
        fallback_zone=zone,
    )
    out = await ActivityEnvironment().run(
        RoutingActivities(pool=pool, redis=redis).route_page, data
    )
    assert out.routes == {branch_route(0): 1, ELSE: 1}
    chosen_key = cohort_key(run, 0, f"bday.{branch_route(0)}")
    matched: list[bytes] = await redis.zrange(chosen_key, 0, -1)  # type: ignore[assignment]
    assert [m.decode() for m in matched] == [users[chosen]]
