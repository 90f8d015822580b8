"""What ``events_soak`` samples beside memory: PostgreSQL's activity, and Redis by key shape.

The soak's p99 had a tail in its second minute that no slow workflow task explained. These
probes show what the database was doing then (the slowest running statements, waits,
checkpoints, WAL written, autovacuum and autoanalyze of the tables the event path writes), and
where Redis's memory sits at the end (so growth can be put on a key, not guessed).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import redis.asyncio as aioredis

from activities.db.pool import DbPool

_ACTIVITY = """
SELECT count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting_on_locks,
       count(*) FILTER (WHERE backend_type = 'autovacuum worker') AS autovacuum_workers
FROM pg_stat_activity WHERE datname = current_database() OR backend_type <> 'client backend'
"""
_SLOWEST = """
SELECT round(extract(epoch FROM clock_timestamp() - query_start) * 1000) AS ms,
       coalesce(wait_event_type || ':' || wait_event, '') AS wait,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
FROM pg_stat_activity
WHERE state = 'active' AND pid <> pg_backend_pid() AND query_start IS NOT NULL
ORDER BY query_start LIMIT 3
"""
_TOTALS = """
SELECT (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter) AS checkpoints,
       (SELECT wal_bytes FROM pg_stat_wal) AS wal_bytes,
       (SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0)
          FROM pg_stat_user_tables) AS auto_maintenance
"""
_TABLES = """
SELECT relname, n_live_tup, autovacuum_count, autoanalyze_count
FROM pg_stat_user_tables WHERE relname = ANY($1::text[]) ORDER BY relname
"""
EVENT_PATH_TABLES = ["events", "journey_entries", "deliveries", "inbox"]


async def sample_postgres(pool: DbPool, *, at_s: float) -> dict[str, Any]:
    """One look at PostgreSQL: counts of active and waiting backends, the three oldest running
    statements, and the running totals (checkpoints, WAL bytes, autovacuum/analyze runs)."""
    activity = await pool.fetchrow(_ACTIVITY)
    totals = await pool.fetchrow(_TOTALS)
    slowest = await pool.fetch(_SLOWEST)
    tables = await pool.fetch(_TABLES, EVENT_PATH_TABLES)
    return {
        "at_s": round(at_s, 1),
        **{k: int(v) for k, v in dict(activity or {}).items()},
        **{k: int(v) for k, v in dict(totals or {}).items()},
        "slowest": [dict(r) | {"ms": int(r["ms"])} for r in slowest],
        "tables": {
            r["relname"]: {
                "rows": int(r["n_live_tup"]),
                "maintenance": int(r["autovacuum_count"] + r["autoanalyze_count"]),
            }
            for r in tables
        },
    }


_SHAPE = [(re.compile(r"\{s\d+\}"), "{sN}"), (re.compile(r"\d+"), "N")]


def key_shape(key: str, *, run_id: str) -> str:
    """``key`` with its run, user, shard and numbers replaced, so keys group by kind."""
    # bench.events.user_of names users after the run's last 8 characters
    shape = key.replace(run_id, "RUN").replace(f"{run_id[-8:]}-", "USER-")
    for pattern, name in _SHAPE:
        shape = pattern.sub(name, shape)
    return shape


async def redis_by_shape(
    redis: aioredis.Redis, *, run_id: str, limit: int = 50_000
) -> list[dict[str, Any]]:
    """Bytes and key counts per key shape, largest first (``MEMORY USAGE`` of up to ``limit``
    keys; past it the figures are a sample)."""
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    keys: list[str] = []
    async for raw in redis.scan_iter(count=1000):
        keys.append(raw.decode() if isinstance(raw, bytes) else str(raw))
        if len(keys) >= limit:
            break
    for start in range(0, len(keys), 1000):  # one round trip per thousand keys
        chunk = keys[start : start + 1000]
        pipe = redis.pipeline(transaction=False)
        for key in chunk:
            pipe.memory_usage(key)
        for key, size in zip(chunk, await pipe.execute(), strict=True):
            shape = key_shape(key, run_id=run_id)
            sizes[shape] += int(size or 0)
            counts[shape] += 1
    return [
        {"shape": shape, "keys": counts[shape], "mib": round(size / 2**20, 2)}
        for shape, size in sizes.most_common(12)
    ]
