"""The ``route_page`` activity: one page of a cohort at a branch, ab_split, update, decide,
check or user-zone wait_until node, written to one sub-cohort per route, exactly once.

Exactly once: the route keys and a page marker (holding the page's result) are written in
one MULTI/EXEC (all keys share the shard's hash tag, so this holds on a cluster too). A
retry after a crash either finds the marker and returns the same result, or finds nothing
written and does the page again. Side effects before the transaction are idempotent: the
first assignment of a user is kept, and an update sets the same values again.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels.runtime import ChannelRuntime
from activities.db import queries
from activities.db.pool import DbPool
from activities.heartbeat import heartbeating
from activities.journey import routes
from activities.journey.check_page import check_routes
from activities.journey.decide_page import decide_routes
from activities.journey.facts import admit, load_facts, page_users
from journeys.contracts import activities as contracts
from journeys.contracts.pages import RoutePageInput, RoutePageOutput
from journeys.names import cohort_key, pages_done_key
from journeys.plan.steps import (
    AbSplitStep,
    BranchStep,
    CheckStep,
    DecideStep,
    UpdateStep,
    WaitUntilStep,
)
from journeys.route_names import OK
from journeys.rule_eval import in_zone


class RoutingActivities:
    """Routing pages; the worker builds one with the shared pools."""

    def __init__(
        self, *, pool: DbPool, redis: aioredis.Redis, channels: ChannelRuntime | None = None
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._channels = channels

    @activity.defn(name=contracts.ROUTE_PAGE.name)
    async def route_page(self, data: RoutePageInput) -> RoutePageOutput:
        """Decide each user's way at the node and write them to the route cohorts."""
        async with heartbeating():
            return await self._route(data)

    async def _route(self, data: RoutePageInput) -> RoutePageOutput:
        data = data.model_copy(update={"now": in_zone(data.now, data.fallback_zone)})
        done_key = pages_done_key(data.run_id, data.shard, data.out_prefix)
        earlier = await self._redis.hget(done_key, str(data.page))
        if earlier is not None:
            return RoutePageOutput.model_validate_json(earlier)
        entries = await page_users(
            self._redis,
            key=data.cohort_key,
            page=data.page,
            page_size=data.page_size,
            state_key=data.state_key,
        )
        kept, exited = await admit(
            self._redis,
            self._pool,
            users=list(entries),
            exited_key=data.exited_key,
            exit_rules=data.exit_rules,
            now=data.now,
            entries=entries,
            run_id=data.run_id,
        )
        by_route = await self._decide(data, kept, entries)
        out = RoutePageOutput(
            routes={route: len(members) for route, members in sorted(by_route.items())},
            exited=exited,
        )
        pipe = self._redis.pipeline(transaction=True)
        for route, members in sorted(by_route.items()):
            key = cohort_key(data.run_id, data.shard, f"{data.out_prefix}.{route}")
            pipe.zadd(key, {u: entries[u] for u in members})
        pipe.hset(done_key, str(data.page), out.model_dump_json())
        await pipe.execute()
        return out

    async def _decide(
        self, data: RoutePageInput, users: list[str], entries: dict[str, int]
    ) -> dict[str, list[str]]:
        if not users:
            return {}
        step = data.step
        if isinstance(step, BranchStep):
            facts = await load_facts(
                self._pool,
                users,
                rules=[way.rule for way in step.branches],
                now=data.now,
                entries=entries,
                run_id=data.run_id,
                redis=self._redis,
            )
            return routes.branch(step, users, facts, now=data.now)
        if isinstance(step, AbSplitStep):
            by_arm, assignments = routes.split(
                step, users, winner_arm=data.winner_arm, test_share=data.test_share
            )
            if data.dry_run or not assignments:
                return by_arm
            await self._pool.execute(
                queries.ASSIGNMENTS_INSERT,
                data.run_id,
                data.node,
                [a.user_id for a in assignments],
                [a.arm for a in assignments],
                [a.control for a in assignments],
                [a.bucket for a in assignments],
                data.now,
                [a.by_winner for a in assignments],
            )
            return by_arm
        if isinstance(step, WaitUntilStep):
            facts = await load_facts(self._pool, users, now=data.now)
            fallback = step.fallback_timezone or data.fallback_zone
            return routes.zones(users, facts, fallback=fallback)
        if isinstance(step, CheckStep):
            service = self._channels.service(step.service) if self._channels else None
            if service is None:
                raise ApplicationError(
                    f"no judgement service {step.service!r} in the worker's channels file",
                    type="ServiceMissing",
                    non_retryable=True,
                )
            return await check_routes(
                self._pool, service, step, users, run_id=data.run_id, node=data.node,
                now=data.now, record=not data.dry_run,
            )  # fmt: skip
        if isinstance(step, DecideStep):
            return await decide_routes(
                self._pool, self._redis, step, users, entries=entries, run_id=data.run_id,
                now=data.now, record=not data.dry_run,
            )  # fmt: skip
        if isinstance(step, UpdateStep):
            if not data.dry_run:
                await self._update(step, users)
            return {OK: users}
        raise TypeError(f"route_page does not handle {step.type} steps")

    async def _update(self, step: UpdateStep, users: list[str]) -> None:
        touch_tags = bool(step.tags_add or step.tags_remove)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(queries.USERS_ENSURE, users)
            await conn.execute(
                queries.USERS_APPLY_UPDATE,
                users,
                dict(step.set or {}),
                list(step.tags_add),
                list(step.tags_remove),
                touch_tags,
            )
