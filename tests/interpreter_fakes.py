"""In-memory stand-ins for the shard's activities, for fast tests of the interpreter's logic.

Cohorts are dicts (member -> entry number) kept in this process instead of Redis sorted sets,
profiles are dicts instead of PostgreSQL rows, and the "channel" delivers to everyone except
the users told to fail. Each fake is registered under its contract's name and payload types,
so the real ``ShardWorkflow`` runs unchanged against them on a real Temporal server. The
per-user decisions are the product's own (``activities.journey.routes``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.journey import routes
from journeys.contracts import activities as contracts
from journeys.contracts.counters import Counters
from journeys.contracts.journey import (
    CatchEventsInput,
    CatchEventsOutput,
    CloseWaitInput,
    CloseWaitOutput,
    MarkExitedInput,
    MarkExitedOutput,
)
from journeys.contracts.pages import (
    CohortSizeInput,
    CohortSizeOutput,
    DeliverPageInput,
    DeliverPageOutput,
    RoutePageInput,
    RoutePageOutput,
)
from journeys.names import cohort_key
from journeys.plan.steps import AbSplitStep, BranchStep, UpdateStep, WaitUntilStep
from journeys.route_names import OK
from journeys.rule_eval import UserFacts


class FakeShard:
    """The keys, profiles and provider of one shard, in memory."""

    def __init__(self, *, profiles: dict[str, dict[str, Any]] | None = None) -> None:
        self.keys: dict[str, dict[str, int]] = defaultdict(dict)
        self.profiles = profiles or {}
        self.failing: dict[str, int] = {}
        """User -> how many more sends to them fail (retryably)."""
        self.sent: list[tuple[str, str]] = []
        """(node, user) of every message delivered, in order."""

    def members(self, key: str, *, page: int, page_size: int) -> dict[str, int]:
        ordered = sorted(self.keys[key].items(), key=lambda kv: (kv[1], kv[0]))
        return dict(ordered[page * page_size : (page + 1) * page_size])

    def activities(self) -> list[Callable[..., Any]]:
        """The fakes, as the worker registers them."""
        return [
            self.cohort_size,
            self.deliver_page,
            self.route_page,
            self.catch_events,
            self.close_wait,
            self.mark_exited,
        ]

    @activity.defn(name=contracts.COHORT_SIZE.name)
    async def cohort_size(self, data: CohortSizeInput) -> CohortSizeOutput:
        return CohortSizeOutput(size=len(self.keys[data.key]))

    @activity.defn(name=contracts.DELIVER_PAGE.name)
    async def deliver_page(self, data: DeliverPageInput) -> DeliverPageOutput:
        page = self.members(data.cohort_key, page=data.page, page_size=data.page_size)
        exited = self.keys[data.exited_key] if data.exited_key else {}
        counters, retry, passed = Counters(), 0, 0
        for user, entry in page.items():
            if user in exited:
                counters.exited += 1
            elif self.failing.get(user, 0) > 0 and data.attempt < data.max_attempts:
                self.failing[user] -= 1
                self.keys[data.retry_key][user] = entry
                retry += 1
            elif self.failing.get(user, 0) > 0:
                counters.failed["provider down"] = counters.failed.get("provider down", 0) + 1
            else:
                self.sent.append((data.node, user))
                counters.delivered += 1
                passed += 1
                if data.passed_key is not None:
                    self.keys[data.passed_key][user] = entry
        return DeliverPageOutput(counters=counters, retry=retry, passed=passed)

    @activity.defn(name=contracts.ROUTE_PAGE.name)
    async def route_page(self, data: RoutePageInput) -> RoutePageOutput:
        page = self.members(data.cohort_key, page=data.page, page_size=data.page_size)
        exited = self.keys[data.exited_key] if data.exited_key else {}
        users = [u for u in page if u not in exited]
        facts = {u: UserFacts(attrs=self.profiles.get(u, {})) for u in users}
        step = data.step
        if isinstance(step, BranchStep):
            by_route = routes.branch(step, users, facts, now=data.now)
        elif isinstance(step, AbSplitStep):
            by_route, _ = routes.split(step, users)
        elif isinstance(step, WaitUntilStep):
            by_route = routes.zones(users, facts, fallback=data.fallback_zone)
        else:
            assert isinstance(step, UpdateStep)
            by_route = {OK: users}
        for route, members in by_route.items():
            key = cohort_key(data.run_id, data.shard, f"{data.out_prefix}.{route}")
            self.keys[key].update({u: page[u] for u in members})
        return RoutePageOutput(
            routes={route: len(members) for route, members in sorted(by_route.items())},
            exited=len(page) - len(users),
        )

    @activity.defn(name=contracts.CATCH_EVENTS.name)
    async def catch_events(self, data: CatchEventsInput) -> CatchEventsOutput:
        waiting, caught = self.keys[data.cohort_key], self.keys[data.caught_key]
        exited, batch = self.keys[data.exited_key], self.keys[data.batch_key]
        new = [u for u in data.users if u in waiting and u not in caught and u not in exited]
        for user in new:
            caught[user] = batch[user] = waiting[user]
        return CatchEventsOutput(caught=len(new))

    @activity.defn(name=contracts.CLOSE_WAIT.name)
    async def close_wait(self, data: CloseWaitInput) -> CloseWaitOutput:
        caught, exited = self.keys[data.caught_key], self.keys[data.exited_key]
        left = {u: n for u, n in self.keys[data.cohort_key].items() if u not in caught}
        timed_out = {u: n for u, n in left.items() if u not in exited}
        self.keys[data.out_key].update(timed_out)
        return CloseWaitOutput(timed_out=len(timed_out), exited=len(left) - len(timed_out))

    @activity.defn(name=contracts.MARK_EXITED.name)
    async def mark_exited(self, data: MarkExitedInput) -> MarkExitedOutput:
        exited = self.keys[data.exited_key]
        new = [u for u in data.users if u not in exited]
        exited.update(dict.fromkeys(new, 0))
        return MarkExitedOutput(marked=len(new))
