"""The ``record_conversions`` activity: goal events that count for a run."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import redis.asyncio as aioredis
from temporalio import activity

from activities.db import queries
from activities.db.pool import DbPool
from journeys.contracts import activities as contracts
from journeys.contracts.journey import RecordConversionsInput, RecordConversionsOutput
from journeys.events import JourneyEvent
from journeys.rule_eval import property_matches


class GoalActivities:
    """Records conversions; the worker builds one with the shared pools."""

    def __init__(self, *, pool: DbPool, redis: aioredis.Redis) -> None:
        self._pool = pool
        self._redis = redis

    @activity.defn(name=contracts.RECORD_CONVERSIONS.name)
    async def record_conversions(self, data: RecordConversionsInput) -> RecordConversionsOutput:
        """Record the first matching goal event of each entered user inside the window.

        A retry inserts nothing twice (one conversion per run, user and entry) and reports
        only what it inserted, so the run's counters never double.
        """
        goal = data.goal
        first: dict[str, tuple[JourneyEvent, Any]] = {}
        for event in sorted(data.events, key=lambda e: (e.ts or data.now, e.user_id)):
            if event.name != goal.event:
                continue
            if not property_matches(goal.where, event.props, now=data.now):
                continue
            first.setdefault(event.user_id, (event, event.ts or data.now))
        entry_of = await self._entries(data, first)
        users = sorted(entry_of)
        if not users:
            return RecordConversionsOutput()
        rows = await self._pool.fetch(
            queries.CONVERSIONS_RECORD,
            data.run_id,
            users,
            [first[u][0].name for u in users],
            [first[u][0].event_id for u in users],
            [first[u][1] for u in users],
            [_value(first[u][0], goal.value_prop) for u in users],
            data.send_nodes,
            data.split_nodes,
            [entry_of[u] for u in users],
        )
        out = RecordConversionsOutput(converted=len(rows))
        for row in rows:
            out.value += float(row["value"] or 0)
            if row["arm"] is not None:
                out.by_arm[row["arm"]] = out.by_arm.get(row["arm"], 0) + 1
        return out

    async def _entries(
        self, data: RecordConversionsInput, first: dict[str, tuple[JourneyEvent, Any]]
    ) -> dict[str, int]:
        """The entry each converting user converts for: event entries by their entry times,
        otherwise the run's one entry (0) for users of its audience inside the window."""
        if not first:
            return {}
        users = sorted(first)
        if data.by_entry:
            rows = await self._pool.fetch(
                queries.ENTRIES_FOR_GOAL,
                data.run_id,
                users,
                [first[u][1] for u in users],
                data.goal.within,
            )
            return {r["user_id"]: r["entry"] for r in rows}
        window_end = data.entered_at + data.goal.within
        users = [u for u in users if data.entered_at <= first[u][1] <= window_end]
        if not users:
            return {}
        member = await self._redis.zmscore(data.audience_key, users)
        return {u: 0 for u, score in zip(users, member, strict=True) if score is not None}


def _value(event: JourneyEvent, prop: str | None) -> Decimal | None:
    """The event's value property as a number (missing or not a number: no value)."""
    if prop is None:
        return None
    raw = event.props.get(prop)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None
