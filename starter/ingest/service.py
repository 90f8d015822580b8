"""Accept a batch of events: validate, store, route to the journeys that listen.

Unsubscribes suppress their users, and receipts, opens, clicks and negative events are
attributed to their messages (:mod:`activities.engagement`), before routing.

All or nothing: a batch with a bad event is refused whole (with every problem named), so a
sender never has to work out which half went in. Accepted events are stored first (those no
running journey listens for as routed already), then routed, then marked routed; a retried
batch (same event ids) stores nothing twice and routes only what a crash left unrouted.
Consumers in the workflows are idempotent, so the rare re-signal after a crash between
routing and marking acts once.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from pydantic import BaseModel
from temporalio.client import Client

from activities.controls.suppression import SuppressionStore, is_channel_name
from activities.db import plan_store, queries
from activities.db.pool import DbPool
from activities.engagement import EngagementMap, EngagementStore
from activities.event_registry import Listener, ListenerCache
from activities.redis_epoch import EpochGuard
from activities.signal_hold import SignalHold
from journeys.errors import EventsRefused, NotFound, NotListening
from journeys.event_checks import MAX_PROPS_DEPTH
from journeys.events import MAX_PROPS_BYTES, JourneyEvent, api_entry_event, parse_events
from journeys.plan.common import PLAN_ID_PATTERN
from journeys.plan.entry import ApiEntry
from journeys.plan.models import Plan
from journeys.policy import Suppression
from journeys.triggers import TriggerReport, parse_trigger
from starter.ingest.coalesce import SignalCoalescer


class IngestReport(BaseModel):
    """What happened to an accepted batch."""

    accepted: int
    duplicates: int = 0
    """Events whose ``event_id`` was seen before (and routed then)."""
    routed: int = 0
    """Event deliveries to running journeys (one event can go to several)."""


class EventIngest:
    """The ingest path shared by ``journeys serve``, the CLI and the tests."""

    def __init__(
        self,
        *,
        pool: DbPool,
        redis: aioredis.Redis,
        client: Client,
        max_props_bytes: int = MAX_PROPS_BYTES,
        max_props_depth: int = MAX_PROPS_DEPTH,
        linger: timedelta = timedelta(0),
        suppression: Suppression | None = None,
        engagement: EngagementMap | None = None,
        guard: EpochGuard | None = None,
    ) -> None:
        """``guard``: refuse (:class:`RedisLost`) rather than read a Redis that lost its data
        (:mod:`activities.redis_epoch`); every long-lived ingest path passes one."""
        self._pool = pool
        self._engagement = EngagementStore(pool=pool, engagement=engagement)
        self._suppression = suppression or Suppression()
        self._suppressions = SuppressionStore(pool=pool, redis=redis)
        self._max_props_bytes = max_props_bytes
        self._max_props_depth = max_props_depth
        self._signals = SignalCoalescer(client, linger=linger, hold=SignalHold(redis))
        self._listeners = ListenerCache(redis, guard=guard)
        self._plans: dict[tuple[str, int], Plan] = {}

    async def ingest(self, raw: Sequence[object]) -> IngestReport:
        """Validate, store and route ``raw`` (JSON objects); raises :class:`EventsRefused`."""
        events, problems = parse_events(
            raw,
            now=datetime.now(UTC),
            max_props_bytes=self._max_props_bytes,
            max_props_depth=self._max_props_depth,
        )
        if problems:
            raise EventsRefused([(p.index, p.field, p.reason) for p in problems])
        # who listens is read before storing, so that events nobody listens for (clicks,
        # receipts) are written once, already routed
        listeners = await self._listeners.lookup(sorted({e.name for e in events}))
        fresh, seqs = await self._store(events, listeners=listeners)
        await self._suppress(fresh)
        await self._engagement.record(fresh)
        routed = await self._route(fresh, listeners=listeners)
        if seqs:
            await self._pool.execute(queries.EVENTS_MARK_ROUTED, seqs)
        return IngestReport(
            accepted=len(events), duplicates=len(events) - len(fresh), routed=routed
        )

    async def enter(self, plan_id: str, raw: object) -> TriggerReport:
        """Enter the users of trigger request ``raw`` into the running runs of ``plan_id``;
        raises :class:`EventsRefused` (malformed), :class:`NotFound` (no such plan) or
        :class:`NotListening` (no run takes API entries now), each before storing anything."""
        if not re.fullmatch(PLAN_ID_PATTERN, plan_id):
            raise NotFound(
                f"no plan {plan_id[:80]!r}: plan ids are lowercase letters, digits and -"
            )
        events, problems = parse_trigger(
            plan_id,
            raw,
            now=datetime.now(UTC),
            max_props_bytes=self._max_props_bytes,
            max_props_depth=self._max_props_depth,
        )
        if problems:
            raise EventsRefused([(p.index, p.field, p.reason) for p in problems])
        name = api_entry_event(plan_id)
        listeners = (await self._listeners.lookup([name], fresh=True))[name]
        mine = f"plan/{plan_id}/v"
        taking = [
            listener
            for listener in listeners
            if listener.run_id.startswith(mine) and await self._takes_entries(listener.run_id)
        ]
        if not taking:
            await plan_store.versions(self._pool, plan_id)  # NotFound for an unknown plan
            raise NotListening(
                f"plan {plan_id!r} has no running run that takes API entries now "
                "(launch it; its entry must be type api, its window open)"
            )
        # other plans may listen for the name too (a wait, a goal): they hear it as an event
        others = [listener for listener in listeners if not listener.run_id.startswith(mine)]
        fresh, seqs = await self._store(events, listeners={name: taking + others})
        routed = await self._route(fresh, listeners={name: taking + others})
        if seqs:
            await self._pool.execute(queries.EVENTS_MARK_ROUTED, seqs)
        return TriggerReport(
            accepted=len(events), duplicates=len(events) - len(fresh), routed=routed
        )

    async def _store(
        self, events: list[JourneyEvent], *, listeners: dict[str, list[Listener]]
    ) -> tuple[list[JourneyEvent], list[int]]:
        """Insert (those nobody in ``listeners`` hears as routed already); returns the events
        to route (new, or stored but never routed) and the seq of the rows to mark routed."""
        rows = await self._pool.fetch(
            queries.EVENTS_INSERT,
            [e.event_id for e in events],
            [e.user_id for e in events],
            [e.name for e in events],
            [e.ts for e in events],
            [e.props for e in events],
            [not listeners.get(e.name) for e in events],
        )
        seqs = [r["seq"] for r in rows if r["pending"]]
        new_ids = {r["event_id"] for r in rows if r["event_id"] is not None}
        repeated = sorted({e.event_id for e in events if e.event_id and e.event_id not in new_ids})
        unrouted: set[str] = set()
        if repeated:
            for row in await self._pool.fetch(queries.EVENTS_UNROUTED, repeated):
                unrouted.add(row["event_id"])
                seqs.append(row["seq"])
        fresh: list[JourneyEvent] = []
        taken: set[str] = set()
        for event in events:
            if event.event_id is None:
                fresh.append(event)
            elif event.event_id not in taken and (
                event.event_id in new_ids or event.event_id in unrouted
            ):
                taken.add(event.event_id)  # a repeat inside the batch acts once too
                fresh.append(event)
        return fresh, seqs

    async def _suppress(self, events: list[JourneyEvent]) -> None:
        """Unsubscribe events (the policy names which) suppress their users at once, on the
        channel their property names, else on every channel; before routing, so no page
        checked after the answer sends to them."""
        name, prop = self._suppression.event, self._suppression.channel_property
        by_channel: dict[str, list[str]] = defaultdict(list)
        for event in events:
            if event.name == name:
                named = event.props.get(prop)
                # anything but a channel name (a typo, "+allow") suppresses on every channel:
                # an unsubscribe is never weaker than it was meant to be
                channel = named if isinstance(named, str) and is_channel_name(named) else "*"
                by_channel[channel].append(event.user_id)
        for channel, users in sorted(by_channel.items()):
            await self._suppressions.add(
                users, channel=channel, reason=name, source=f"event:{name}"
            )

    async def _takes_entries(self, run_id: str) -> bool:
        """Whether run ``run_id`` (``plan/{id}/v{N}/{key}``) has an API entry whose window is
        open now; versions never change, so each is read once."""
        _, plan_id, version, _ = run_id.split("/", 3)
        key = (plan_id, int(version.removeprefix("v")))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = await plan_store.load(self._pool, *key)
        entry = plan.entry
        if not isinstance(entry, ApiEntry):
            return False
        end = entry.window.end if entry.window is not None else None
        return end is None or datetime.now(UTC) < end

    async def _route(
        self,
        events: list[JourneyEvent],
        *,
        listeners: dict[str, list[Listener]] | None = None,
    ) -> int:
        """One batched signal per (run, shard) listening for the events' names (or, given
        ``listeners``, per those)."""
        if listeners is None:
            listeners = await self._listeners.lookup(sorted({e.name for e in events}))
        per_run: dict[tuple[str, int], list[JourneyEvent]] = defaultdict(list)
        for event in events:
            for listener in listeners.get(event.name, []):
                per_run[(listener.run_id, listener.shards)].append(event)
        reached = await asyncio.gather(
            *(
                self._signals.send(run_id=run_id, shards=shards, events=batch)
                for (run_id, shards), batch in sorted(per_run.items())
            )
        )
        return sum(reached)
