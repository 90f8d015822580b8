"""What a segment selects, without materialising it: the count, the count per shard, a sample.

The ids stream from PostgreSQL through a cursor and are only counted (and the first few
kept), so a preview of millions holds no list of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from activities.db import tag_store
from activities.db.pool import DbPool
from journeys.plan.rule_sites import rule_tags
from journeys.rule_sql import SqlParam, segment_query
from journeys.rules import Rule
from journeys.sharding import shard_of
from journeys.tag_sql import registry_reader

_CHUNK = 50_000


@dataclass
class SegmentPreview:
    """A segment's size now: in all, per shard, and its first users by id."""

    query: str
    params: list[SqlParam]
    total: int = 0
    per_shard: list[int] = field(default_factory=list)
    sample: list[str] = field(default_factory=list)


async def preview_segment(
    pool: DbPool, rule: Rule, *, now: datetime, shards: int, sample: int = 10
) -> SegmentPreview:
    """Evaluate ``rule`` at ``now`` in one read-only transaction."""
    definitions = await tag_store.live_definitions(pool, rule_tags([rule]))
    query, params = segment_query(rule, now=now, read_tag=registry_reader(definitions))
    found = SegmentPreview(query=query, params=params, per_shard=[0] * shards)
    async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
        cursor = await conn.cursor(f"{query} ORDER BY u.user_id", *params)
        while rows := await cursor.fetch(_CHUNK):
            for row in rows:
                user = str(row[0])
                found.per_shard[shard_of(user, shards)] += 1
                if len(found.sample) < sample:
                    found.sample.append(user)
            found.total += len(rows)
    return found
