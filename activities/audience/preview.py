"""What a segment selects, without materialising it: the count, the count per shard, a sample.

A selection the planner expects to be moderate (up to :data:`PARALLEL_UP_TO` users) is read
by one plain query that hands the ids back in 64 arrays: PostgreSQL may run a plain query
with parallel workers, never one fetched through a cursor, and the scan of a million
profiles is most of a preview's time. A larger one streams through a cursor, 50,000 ids at a
time. Either way the ids are only counted (and the first few by id kept).
"""

from __future__ import annotations

import heapq
import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime

import mmh3

from activities.db import tag_store
from activities.db.pool import DbPool
from journeys.plan.rule_sites import rule_tags
from journeys.rule_sql import SqlParam, segment_query
from journeys.rules import Rule
from journeys.tag_sql import registry_reader

_CHUNK = 50_000
PARALLEL_UP_TO = 1_000_000
"""The planner's estimate of the users selected up to which a preview reads them at once."""


@dataclass
class SegmentPreview:
    """A segment's size now: in all, per shard, and its first users by id."""

    query: str
    params: list[SqlParam]
    total: int = 0
    per_shard: list[int] = field(default_factory=list)
    sample: list[str] = field(default_factory=list)
    statement: str = ""
    """The SQL the preview ran: ``query`` wrapped in the grouped read, or as it is."""
    streamed: bool = False
    """Read through a cursor (no parallel workers), the planner expecting many users."""


async def preview_segment(
    pool: DbPool, rule: Rule, *, now: datetime, shards: int, sample: int = 10
) -> SegmentPreview:
    """Evaluate ``rule`` at ``now`` in one read-only transaction."""
    definitions = await tag_store.live_definitions(pool, rule_tags([rule]))
    query, params = segment_query(rule, now=now, read_tag=registry_reader(definitions))
    found = SegmentPreview(query=query, params=params, per_shard=[0] * shards)
    async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
        plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *params))
        if plan[0]["Plan"]["Plan Rows"] <= PARALLEL_UP_TO:
            found.statement = (
                f"SELECT array_agg(q.user_id) FROM ({query}) AS q GROUP BY hashtext(q.user_id) & 63"
            )
            for (ids,) in await conn.fetch(found.statement, *params):
                _count(found, ids, sample=sample)
        else:
            found.statement, found.streamed = query, True
            cursor = await conn.cursor(query, *params)
            while rows := await cursor.fetch(_CHUNK):
                _count(found, [row[0] for row in rows], sample=sample)
    return found


def _count(found: SegmentPreview, ids: list[str], *, sample: int) -> None:
    per_shard, mask, hash32 = found.per_shard, len(found.per_shard) - 1, mmh3.hash
    for user in ids:  # shard_of inlined: a call per id costs a third of a second a million
        per_shard[hash32(user, signed=False) & mask] += 1
    found.total += len(ids)
    found.sample = heapq.nsmallest(sample, itertools.chain(found.sample, ids))
