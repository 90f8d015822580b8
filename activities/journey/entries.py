"""The ``admit_entries`` activity: a shard's buffered entry events become one cohort.

Checks, in order: one entry per user per batch, the audience (when the plan has one), the
entry rule, the re-entry rule (once / after the cool-down / when not in the journey now), the
daily limit. Admitted users get their next entry number (the ``{entry}`` of idempotency keys)
as their score in the cohort.

Exactly once: the entry rows carry the batch id, so a retry finds what it admitted before; the
daily counter takes its share under a per-batch mark in the same Lua call; the cohort key and
the batch's result are written in one MULTI/EXEC, which also deletes what the shard says is
dead: the keys of cohorts that left it and the marks of batches it has recorded.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from temporalio import activity

from activities.db import queries
from activities.db.pool import DbPool
from activities.journey.facts import load_facts
from activities.run_state import execute_checked
from journeys.contracts import activities as contracts
from journeys.contracts.journey import AdmitEntriesInput, AdmitEntriesOutput
from journeys.events import JourneyEvent
from journeys.names import daily_entries_key, entry_marks_key
from journeys.rule_eval import UserFacts, evaluate, in_zone

# KEYS: day counter, batch mark. ARGV: wanted, limit, ttl seconds. Returns how many it took.
_TAKE_DAILY = """
local done = redis.call('GET', KEYS[2])
if done then return tonumber(done) end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local take = math.max(0, math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used))
redis.call('INCRBY', KEYS[1], take)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], take, 'EX', ARGV[3])
return take
"""
_DAY_TTL = int(timedelta(days=3).total_seconds())


def _batch_id(data: AdmitEntriesInput) -> str:
    """Batch names count per shard (``in0``, ``in1`` ...); rows need the shard too."""
    return f"{data.shard}/{data.batch}"


class EntryActivities:
    """Admits entries; the worker builds one with the shared pools."""

    def __init__(self, *, pool: DbPool, redis: aioredis.Redis) -> None:
        self._pool = pool
        self._redis = redis
        self._take_daily = redis.register_script(_TAKE_DAILY)

    @activity.defn(name=contracts.ADMIT_ENTRIES.name)
    async def admit_entries(self, data: AdmitEntriesInput) -> AdmitEntriesOutput:
        """Turn entry events into the cohort at ``data.cohort_key``."""
        marks = entry_marks_key(data.run_id, data.shard)
        earlier = await self._redis.hget(marks, data.batch)
        if earlier is not None:
            return AdmitEntriesOutput.model_validate_json(earlier)
        rows = await self._pool.fetch(queries.ENTRIES_OF_BATCH, data.run_id, _batch_id(data))
        if rows:  # admitted before a crash: keep exactly those
            admitted = {r["user_id"]: r["entry"] for r in rows}
            out = AdmitEntriesOutput(admitted=len(admitted))
        else:
            admitted, out = await self._decide(data)
        pipe = self._redis.pipeline(transaction=True)
        if admitted:
            pipe.zadd(data.cohort_key, {u: float(n) for u, n in admitted.items()})
            if data.exited_key is not None:
                pipe.zrem(data.exited_key, *admitted)  # a new entry starts afresh
        pipe.hset(marks, data.batch, out.model_dump_json())
        if data.drop_keys:
            pipe.unlink(*data.drop_keys)
        if data.drop_marks:
            pipe.hdel(marks, *data.drop_marks)
        await execute_checked(pipe, data.state_key)  # covers the audience read above too
        return out

    async def _not_admitted_before(
        self,
        run_id: str,
        users: list[str],
        first: dict[str, JourneyEvent],
        refused: Counter[str],
    ) -> list[str]:
        """``users`` but those whose event already entered them: an event the ingest API
        signalled and then crashed before marking routed comes again when its sender
        retries, and must not enter its user a second time."""
        ids = [first[u].event_id for u in users if first[u].event_id is not None]
        if not ids:
            return users
        seen = {
            r["event_id"] for r in await self._pool.fetch(queries.ENTRIES_OF_EVENTS, run_id, ids)
        }
        again = [u for u in users if first[u].event_id in seen]
        refused["repeat of an entered event"] += len(again)
        return [u for u in users if first[u].event_id not in seen]

    async def _decide(self, data: AdmitEntriesInput) -> tuple[dict[str, int], AdmitEntriesOutput]:
        data = data.model_copy(update={"now": in_zone(data.now, data.timezone)})
        refused: Counter[str] = Counter()
        first: dict[str, JourneyEvent] = {}
        for event in data.events:
            if event.user_id in first:
                refused["repeat in batch"] += 1
            else:
                first[event.user_id] = event
        users = await self._not_admitted_before(data.run_id, sorted(first), first, refused)
        if data.audience_key is not None and users:
            scores = await self._redis.zmscore(data.audience_key, users)
            outside = {u for u, s in zip(users, scores, strict=True) if s is None}
            refused["not in audience"] += len(outside)
            users = [u for u in users if u not in outside]
        if data.entry.rule is not None and users:
            facts = await load_facts(
                self._pool,
                users,
                rules=[data.entry.rule],
                now=data.now,
                redis=self._redis,
                entry_given={u: first[u].props for u in users},
            )
            passing = [
                u
                for u in users
                if evaluate(
                    data.entry.rule,
                    UserFacts(attrs=facts[u].attrs, events=facts[u].events, entry=first[u].props),
                    now=data.now,
                )
            ]
            refused["entry rule"] += len(users) - len(passing)
            users = passing
        latest = {
            r["user_id"]: (r["entry"], r["entered_at"])
            for r in await self._pool.fetch(queries.ENTRIES_LATEST, data.run_id, users)
        }
        users = await self._reentry(data, users, latest, refused)
        if data.entry.daily_limit is not None and users:
            day = data.now.astimezone(data.zone_info()).date().isoformat()
            key = daily_entries_key(data.run_id, day)
            mark = f"{key}:batch:{data.shard}:{data.batch}"
            took = int(
                await self._take_daily(
                    keys=[key, mark], args=[len(users), data.entry.daily_limit, _DAY_TTL]
                )
            )
            refused["daily limit"] += len(users) - took
            users = users[:took]
        admitted = {u: latest.get(u, (0, None))[0] + 1 for u in users}
        if admitted:
            await self._pool.execute(
                queries.ENTRIES_INSERT,
                data.run_id,
                _batch_id(data),
                list(admitted),
                list(admitted.values()),
                [first[u].event_id for u in admitted],
                [first[u].props for u in admitted],
                data.now,
            )
        refused_counts = {reason: n for reason, n in sorted(refused.items()) if n}
        return admitted, AdmitEntriesOutput(admitted=len(admitted), refused=refused_counts)

    async def _reentry(
        self,
        data: AdmitEntriesInput,
        users: list[str],
        latest: dict[str, tuple[int, Any]],
        refused: Counter[str],
    ) -> list[str]:
        rule = data.entry.reentry
        if rule == "once":
            kept = [u for u in users if u not in latest]
        elif rule == "after_cooldown":
            cooldown = data.entry.cooldown or timedelta(0)
            kept = [u for u in users if u not in latest or latest[u][1] + cooldown <= data.now]
        else:  # when_absent: not standing in any live cohort of this shard
            inside: set[str] = set()
            if users and data.live_keys:
                pipe = self._redis.pipeline(transaction=False)
                for key in data.live_keys:
                    pipe.zmscore(key, users)
                for scores in await pipe.execute():
                    inside.update(u for u, s in zip(users, scores, strict=True) if s is not None)
            kept = [u for u in users if u not in inside]
        if len(kept) < len(users):
            refused[f"re-entry ({rule})"] += len(users) - len(kept)
        return kept
