"""What a journey run did to each user, read from the keys it left in Redis (snapshotted
before its cleanup) and from the ledger tables."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from activities.db.pool import DbPool
from activities.journey.facts import page_users
from journeys.contracts.counters import Counters, RunStatus
from journeys.contracts.runs import PlanRunResult
from journeys.names import run_keys_pattern
from journeys.plan.listening import listening_entry
from journeys.plan.models import Plan
from starter.launching import Launched
from tests.journey_paths import NOT_COHORTS, deepest, trace


@dataclass
class UserOutcome:
    """What one user went through."""

    path: list[str] = field(default_factory=list)
    """Nodes reached in their latest entry, in order."""
    paths: dict[int, list[str]] = field(default_factory=dict)
    """Entry number -> nodes reached (0 for an audience entry)."""
    messages: list[str] = field(default_factory=list)
    """Nodes that sent this user a message, in the order sent."""
    failed: list[str] = field(default_factory=list)
    exited: bool = False
    arms: dict[str, str] = field(default_factory=dict)
    """ab_split node -> the arm assigned."""
    converted: bool = False


@dataclass
class JourneyOutcome:
    """What a finished run did, in all and per user."""

    run_id: str
    launched: Launched
    """What ``journeys launch`` said: the version pinned, whether it published one."""
    plan: Plan
    result: PlanRunResult
    nodes: dict[str, Counters]
    users: dict[str, UserOutcome]

    def paths(self) -> dict[str, list[str]]:
        return {user: outcome.path for user, outcome in sorted(self.users.items())}


async def read_run_keys(
    redis: aioredis.Redis, run_id: str, *, only: list[str] | None = None
) -> dict[str, dict[str, int]]:
    """Every sorted set of a run (or those of ``only`` keys): key -> member -> score."""
    sets: dict[str, dict[str, int]] = {}
    if only is not None:
        names = only
    else:
        names = [
            raw.decode()
            async for raw in redis.scan_iter(match=run_keys_pattern(run_id), count=1000)
        ]
    for key in names:
        if await redis.type(key) != b"zset":
            continue
        sets[key] = await page_users(redis, key=key, page=0, page_size=await redis.zcard(key))
    return sets


async def outcome_of(
    pool: DbPool,
    keys: dict[str, dict[str, int]],
    *,
    plan: Plan,
    launched: Launched,
    result: PlanRunResult,
    nodes: dict[str, Counters],
) -> JourneyOutcome:
    """A finished run's outcome: ``keys`` is its Redis sorted sets as the run left them."""
    run_id = result.run_id
    finished = result.status is RunStatus.COMPLETED  # else holds were cut short
    by_event = listening_entry(plan) is not None
    users: dict[str, UserOutcome] = defaultdict(UserOutcome)
    cohorts: dict[tuple[str, int], list[str]] = defaultdict(list)
    for key, members in keys.items():
        _, _, cohort_id = key.partition(":c:")
        if key.endswith(":exited"):
            for user in members:
                users[user].exited = True
        elif (key.endswith(":aud") and not by_event) or (cohort_id and _is_cohort(cohort_id)):
            # an event plan's :aud is who may enter, not a cohort: entries are in{n}
            for user, entry in members.items():
                cohorts[(user, entry)].append("entry" if key.endswith(":aud") else cohort_id)
    for (user, entry), ids in sorted(cohorts.items()):
        users[user].paths[entry] = trace(plan, deepest(ids), finished=finished)
    for outcome in users.values():
        if outcome.paths:
            outcome.path = outcome.paths[max(outcome.paths)]
    rows = await pool.fetch(
        "SELECT user_id, node_id, status FROM deliveries WHERE run_id = $1"
        " ORDER BY entry, created_at, node_id",
        run_id,
    )
    for row in rows:
        if row["status"] == "sent":
            users[row["user_id"]].messages.append(row["node_id"])
        elif row["status"] in ("failed", "dead"):
            users[row["user_id"]].failed.append(row["node_id"])
    for row in await pool.fetch(
        "SELECT user_id, node_id, arm FROM assignments WHERE run_id = $1", run_id
    ):
        users[row["user_id"]].arms[row["node_id"]] = row["arm"]
    for row in await pool.fetch("SELECT user_id FROM conversions WHERE run_id = $1", run_id):
        users[row["user_id"]].converted = True
    return JourneyOutcome(
        run_id=run_id,
        launched=launched,
        plan=plan,
        result=result,
        nodes=nodes,
        users=dict(users),
    )


def _is_cohort(cohort_id: str) -> bool:
    last = cohort_id.rsplit(">", 1)[-1]
    return not cohort_id.endswith(":pages") and last.split(".", 1)[-1] not in NOT_COHORTS
