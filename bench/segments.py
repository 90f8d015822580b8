"""Scenario ``segments``: segment rules compiled to SQL, previewed and materialised.

For each size N, N profiles and ``EVENTS_PER_USER`` * N events (over the last
:data:`EVENT_DAYS` days, in time order as an append-only log holds them; a fifth of the users
have none) are generated server-side (``INSERT ... SELECT generate_series``) into copies of
``users`` and ``events`` in the schema :data:`SCHEMA`, with the indexes the migrations give
the originals (read from the catalog: those of migration 009 too, ``events (name, ts) INCLUDE
(user_id)`` for the grouped scans of behaviour leaves), then vacuumed and analysed. Every
connection of the scenario puts that schema first on its ``search_path``, so the product's
unqualified queries read it and a configured database's own users and events are never
touched. A size generated in the last :data:`REUSE_FOR` is reused while its indexes are still
those of the originals (``DROP SCHEMA bench_segments CASCADE`` forgets it). Then, for each
rule of :data:`RULES`, in the same run and against the same services:

- **preview**: :func:`activities.audience.preview.preview_segment` (16 shards), best of
  :data:`PREVIEW_REPEAT`, and ``EXPLAIN (ANALYZE, BUFFERS)`` of the statement it ran, as it
  ran it (with parallel workers unless it streamed through a cursor: see :func:`explain`),
  whose execution time is the server's part;
- **floor**: ``COPY (<compiled SELECT>) TO STDOUT`` of the query ``materialise`` compiles
  (asyncpg inlines the parameters as quoted literals), the ids grouped by shard
  (``group_by_shard``) and ZADDed into 16 sorted sets, batched and pipelined like
  ``write_shards``: what reading the ids and writing them costs;
- **materialise**: :func:`activities.audience.materialise.materialise` of the rule as a
  ``SegmentAudience``, interleaved with the floor, best of :data:`REPEAT`.

The floor's COPY may run a parallel plan, and has no fallback to a serial one: the date
readers it can call (``journeys_ts``, ``journeys_date``) are the plain SQL functions of
migration 009, which the bench applies before any scenario. Those of migration 006 opened a
subtransaction (a plpgsql EXCEPTION block) that parallel mode refuses; a failure of that kind
now is a function wrongly marked PARALLEL SAFE, for the bench to report, not to work around.

The targets of the issue: a preview under 1 s and a materialisation within 2x its floor, on
1,000,000 profiles and 10,000,000 events.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeAlias

import asyncpg
import redis.asyncio as aioredis
from pydantic import TypeAdapter
from rich.console import Console
from rich.table import Table

from activities.audience.materialise import materialise
from activities.audience.preview import SegmentPreview, preview_segment
from activities.audience.shard_sets import group_by_shard
from activities.db import tag_store
from activities.db.pool import DbPool
from journeys.names import run_audience_key
from journeys.plan.audience import SegmentAudience
from journeys.plan.rule_sites import rule_tags
from journeys.rule_sql import SqlParam, segment_query
from journeys.rules import Rule
from journeys.settings import Settings
from journeys.tag_sql import registry_reader
from starter.connect import redis_client

from .results import save
from .upload import delete_shards, raw_write

SCHEMA = "bench_segments"
EVENTS_PER_USER = 10
EVENT_DAYS = 120
REUSE_FOR = timedelta(days=1)
SHARDS = 16
PREVIEW_REPEAT = 3
REPEAT = 3
BATCH = 1000  # members per ZADD, write_shards' default
TARGET_SIZE = 1_000_000  # the profiles of the targets
PREVIEW_TARGET_S = 1.0
MATERIALISE_TARGET_X = 2.0

RULES: dict[str, dict[str, Any]] = {
    # attributes only: jsonb reads, a relative date read by journeys_ts
    "attributes": {
        "all": [
            {"tag": "tier", "op": "in", "value": ["gold", "silver"]},
            {"tag": "orders", "op": "gte", "value": 5},
            {"tag": "city", "op": "in", "value": ["Shanghai", "Beijing", "Shenzhen"]},
            {"tag": "signup_at", "op": "gte", "value": "T-365d"},
        ]
    },
    # one behaviour: big recent spenders
    "behaviour": {
        "event": "order_paid",
        "within": "30d",
        "count": {"gte": 2},
        "where": {"amount": {"gte": 100}},
    },
    # all / any / not of attributes and behaviours: cart abandoners among good customers
    "mixed": {
        "all": [
            {"tag": "tier", "op": "in", "value": ["gold", "silver"]},
            {
                "any": [
                    {"event": "cart_add", "within": "7d", "count": {"gte": 2}},
                    {"event": "push_clicked", "within": "14d"},
                ]
            },
            {"not": {"event": "order_paid", "within": "30d"}},
        ]
    },
    # a count that allows 0: users with no event at all must be selected
    "dormant": {
        "all": [
            {"tag": "vip", "op": "eq", "value": True},
            {"event": "app_open", "within": "14d", "count": {"lte": 0}},
        ]
    },
    "anniversary": {"tag": "birthday", "op": "anniversary", "value": "week"},
    # most users: what streaming and writing the ids costs beside the query
    "broad": {
        "all": [
            {"tag": "tier", "op": "ne", "value": "gold"},
            {"tag": "orders", "op": "lt", "value": 20},
        ]
    },
}

CITIES = (
    "Shanghai", "Beijing", "Shenzhen", "Guangzhou", "Chengdu", "Hangzhou", "Wuhan", "Xian",
    "Nanjing", "Tianjin", "Suzhou", "Chongqing", "Changsha", "Qingdao", "Dalian", "Xiamen",
    "Kunming", "Harbin", "Shenyang", "Zhengzhou",
)  # fmt: skip
EVENT_MIX = (  # (name, cumulative share): a skewed mix, purchases the rarest
    ("app_open", 0.45),
    ("page_view", 0.70),
    ("cart_add", 0.85),
    ("push_clicked", 0.95),
    ("order_paid", 1.0),
)
ACTIVE_SHARE = 0.8  # the others have no event at all
ACTIVITY_SKEW = 1.6  # events per active user fall off as a power of a uniform draw

_USERS_SQL = f"""
INSERT INTO {SCHEMA}.users (user_id, email, phone, timezone, attrs)
SELECT 'u' || lpad(i::text, 8, '0'), 'u' || i || '@example.com',
       '+86130' || lpad(i::text, 8, '0'), 'Asia/Shanghai',
       jsonb_build_object(
           'tier', CASE WHEN r < 0.1 THEN 'gold' WHEN r < 0.4 THEN 'silver' ELSE 'bronze' END,
           'orders', floor(power(random(), 3) * 60)::int,
           'vip', random() < 0.05,
           'city', ($2::text[])[1 + floor(power(random(), 1.5) * {len(CITIES)})::int],
           'birthday', to_char(date '1960-01-01' + floor(random() * 16000)::int, 'YYYY-MM-DD'),
           'signup_at', to_char(($3::timestamptz - random() * interval '1500 days')
                                AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'))
FROM (SELECT i, random() AS r FROM generate_series(1, $1::bigint) AS i) AS s
"""
_EVENT_NAME = (
    "CASE "
    + " ".join(f"WHEN r < {share} THEN '{name}'" for name, share in EVENT_MIX[:-1])
    + f" ELSE '{EVENT_MIX[-1][0]}' END"
)
# Users are k * p mod N for a prime p (a permutation when p does not divide N), so activity
# does not follow the id order; ts grows with seq, as events arrive.
_EVENTS_SQL = f"""
INSERT INTO {SCHEMA}.events (seq, user_id, name, ts, props, received_at)
SELECT g, 'u' || lpad((k * 1000003 % $1::bigint + 1)::text, 8, '0'), name, ts, props, ts
FROM (
    SELECT g,
           floor(power(random(), {ACTIVITY_SKEW}) * $1::bigint * {ACTIVE_SHARE})::bigint AS k,
           {_EVENT_NAME} AS name,
           $3::timestamptz - interval '{EVENT_DAYS} days' * (($2::bigint - g + random()) / $2)
               AS ts,
           jsonb_build_object('amount', round((random() * 300)::numeric, 2),
                              'sku', 'sku-' || floor(random() * 500)::int) AS props
    FROM (SELECT g, random() AS r FROM generate_series(1, $2::bigint) AS g) AS s0
) AS s
"""

Connection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
console = Console(width=160, highlight=False)


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """Measure every size, print the tables, write ``bench/results/segments-<date>.json``."""
    rows: list[dict[str, Any]] = []
    data: list[dict[str, Any]] = []
    async with bench_pool(settings) as pool, redis_client(settings) as redis:
        for size in sizes:
            generated = await ensure_data(pool, size)
            data.append({"size": size, "events": size * EVENTS_PER_USER, **generated})
            found = await measure(pool, redis, size)
            console.print(table(found, size))
            rows += found
    return save(
        "segments",
        rows=rows,
        data=data,
        shards=SHARDS,
        events_per_user=EVENTS_PER_USER,
        preview_repeat=PREVIEW_REPEAT,
        repeat=REPEAT,
        rules=RULES,
    )


@asynccontextmanager
async def bench_pool(settings: Settings) -> AsyncIterator[DbPool]:
    """A pool whose connections read :data:`SCHEMA`'s tables first (``search_path``)."""
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=4,
        server_settings={"search_path": f"{SCHEMA}, public"},
    )
    try:
        yield pool
    finally:
        await pool.close()


# --- data -----------------------------------------------------------------------------------


async def ensure_data(pool: DbPool, size: int) -> dict[str, Any]:
    """``size`` users and their events in :data:`SCHEMA`, generated unless already there.

    Every statement names the schema: an unqualified name would fall through the search
    path to the real table when the bench's copy is missing."""
    events = size * EVENTS_PER_USER
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        await conn.execute(
            f"CREATE UNLOGGED TABLE IF NOT EXISTS {SCHEMA}.meta"
            " (users bigint, events bigint, generated_at timestamptz)"
        )
        done = await conn.fetchrow(f"SELECT users, events, generated_at FROM {SCHEMA}.meta")
        if _reusable(done, size=size, events=events, now=now):
            if await indexes_copied(conn):
                console.print(f"reusing {size:,} users and {events:,} events in {SCHEMA}")
                return {"generated_s": None}
            console.print(f"the indexes in {SCHEMA} are not those of the migrated tables")
        console.print(f"generating {size:,} users and {events:,} events in {SCHEMA} ...")
        timings = await generate(conn, size, events, now=now)
        await conn.execute(f"TRUNCATE {SCHEMA}.meta")
        await conn.execute(f"INSERT INTO {SCHEMA}.meta VALUES ($1, $2, $3)", size, events, now)
    console.print(
        "generated in " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
    )
    return {"generated_s": timings}


def _reusable(done: asyncpg.Record | None, *, size: int, events: int, now: datetime) -> bool:
    """The bench schema holds this size, generated less than :data:`REUSE_FOR` ago."""
    if done is None or (done["users"], done["events"]) != (size, events):
        return False
    return bool(done["generated_at"] > now - REUSE_FOR)


async def generate(conn: Connection, size: int, events: int, *, now: datetime) -> dict[str, float]:
    """Fresh tables (unlogged: generated data needs no crash safety), rows, indexes, VACUUM."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for table in ("users", "events"):
        await conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{table}")
        await conn.execute(
            f"CREATE UNLOGGED TABLE {SCHEMA}.{table}"
            f" (LIKE public.{table} INCLUDING ALL EXCLUDING INDEXES)"
        )
    await conn.execute("SELECT setseed(0.42)")  # the same data for the same size
    await conn.execute(_USERS_SQL, size, list(CITIES), now)
    timings["users"], started = _lap(started)
    await conn.execute(_EVENTS_SQL, size, events, now)
    timings["events"], started = _lap(started)
    async with conn.transaction():
        await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        for table in ("users", "events"):
            for ddl in await index_definitions(conn, table):
                await conn.execute(ddl)
    timings["indexes"], started = _lap(started)
    for table in ("users", "events"):
        await conn.execute(f"VACUUM (ANALYZE) {SCHEMA}.{table}")
    timings["vacuum"], _ = _lap(started)
    return timings


async def index_definitions(conn: Connection, table: str) -> list[str]:
    """The migrated indexes of ``public.<table>``, as statements on the bench's copy."""
    source, target = f" ON public.{table} USING ", f" ON {SCHEMA}.{table} USING "
    ddls = await _indexes(conn, f"public.{table}")
    if not ddls or any(source not in ddl for ddl in ddls):
        raise RuntimeError(f"unexpected index definitions of public.{table}: {ddls}")
    return [ddl.replace(source, target, 1) for ddl in ddls]


async def indexes_copied(conn: Connection) -> bool:
    """The bench's copies have exactly the indexes :func:`index_definitions` gives them now:
    not so when a migration added one after they were generated (as 009 did)."""
    for table in ("users", "events"):
        copied = await _indexes(conn, f"{SCHEMA}.{table}")
        if sorted(copied) != sorted(await index_definitions(conn, table)):
            return False
    return True


async def _indexes(conn: Connection, relation: str) -> list[str]:
    """``pg_get_indexdef`` of each index of ``relation`` (none when there is no such table)."""
    async with conn.transaction():
        await conn.execute("SET LOCAL search_path = pg_catalog")  # so every name is qualified
        rows = await conn.fetch(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = to_regclass($1)",
            relation,
        )
    return [str(row[0]) for row in rows]


def _lap(started: float) -> tuple[float, float]:
    """Seconds since ``started`` and the clock now, to start the next lap."""
    now = time.perf_counter()
    return round(now - started, 2), now


# --- measurements ---------------------------------------------------------------------------


async def measure(pool: DbPool, redis: aioredis.Redis, size: int) -> list[dict[str, Any]]:
    """Every rule at one size: its preview, and its materialisation against its floor."""
    rules = {name: TypeAdapter(Rule).validate_python(raw) for name, raw in RULES.items()}
    rows: list[dict[str, Any]] = []
    for name, rule in rules.items():
        console.print(f"[bold]{name}[/bold] at {size:,}")
        row: dict[str, Any] = {"size": size, "events": size * EVENTS_PER_USER, "rule": name}
        # one moment for every preview of the rule, so they select the same users
        row |= await measure_preview(pool, rule, now=datetime.now(UTC))
        row |= await measure_materialise(pool, redis, rule)
        rows.append(row)
    return rows


async def measure_preview(pool: DbPool, rule: Rule, *, now: datetime) -> dict[str, Any]:
    """``preview_segment`` at ``now``, best of :data:`PREVIEW_REPEAT`, and EXPLAIN of the
    query it ran."""
    samples: list[float] = []
    previews: list[SegmentPreview] = []
    for _ in range(PREVIEW_REPEAT):
        started = time.perf_counter()
        previews.append(await preview_segment(pool, rule, now=now, shards=SHARDS))
        samples.append(time.perf_counter() - started)
    found = previews[-1]
    plan, server_ms = await explain(pool, found.statement, found.params, streamed=found.streamed)
    console.print("  EXPLAIN (ANALYZE, BUFFERS) of the compiled query:")
    console.print("\n".join(f"    {line}" for line in plan), markup=False)
    return {
        "selected": found.total,
        "per_shard": found.per_shard,
        "preview_s": round(min(samples), 4),
        "preview_samples": [round(s, 4) for s in samples],
        "server_ms": server_ms,
        "query": found.query,
        "explain": plan,
    }


async def measure_materialise(pool: DbPool, redis: aioredis.Redis, rule: Rule) -> dict[str, Any]:
    """The floor and ``materialise``, interleaved, best of :data:`REPEAT`, after one floor
    that is not measured (a warm-up)."""
    tag = uuid.uuid4().hex[:8]
    floor_key = partial(run_audience_key, f"bench-segments-floor-{tag}")
    product_key = partial(run_audience_key, f"bench-segments-{tag}")
    samples: dict[str, list[float]] = {"floor": [], "materialise": []}
    written: dict[str, int] = {}
    try:
        query, params = await compiled(pool, rule)
        await floor(pool, redis, query, params, key=floor_key)
        for _ in range(REPEAT):
            await delete_shards(redis, floor_key, product_key)
            query, params = await compiled(pool, rule)
            started = time.perf_counter()
            written["floor"] = await floor(pool, redis, query, params, key=floor_key)
            samples["floor"].append(time.perf_counter() - started)
            started = time.perf_counter()
            counts = await materialise(
                redis,
                pool,
                audience=SegmentAudience(rule=rule),
                run_id=f"bench-segments-{tag}",
                shards=SHARDS,
                target=product_key,
            )
            samples["materialise"].append(time.perf_counter() - started)
            written["materialise"] = sum(counts)
    finally:
        await delete_shards(redis, floor_key, product_key)
    best = {name: min(values) for name, values in samples.items()}
    console.print(
        f"  floor {best['floor']:.3f} s ({written['floor']:,} ids),"
        f" materialise {best['materialise']:.3f} s ({written['materialise']:,})"
    )
    return {
        "floor_s": round(best["floor"], 4),
        "materialise_s": round(best["materialise"], 4),
        "ratio": round(best["materialise"] / best["floor"], 2),
        "floor_ids": written["floor"],
        "materialise_ids": written["materialise"],
        "samples": {name: [round(v, 4) for v in values] for name, values in samples.items()},
    }


_NO_WORKERS = "SET LOCAL max_parallel_workers = 0"
_EXECUTION = re.compile(r"Execution Time: ([0-9.]+) ms")


async def explain(
    pool: DbPool, statement: str, params: Sequence[SqlParam], *, streamed: bool
) -> tuple[list[str], float | None]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the statement the preview ran, and its execution
    time in ms. A statement it streamed through a cursor runs without workers (a portal
    fetched a chunk at a time never gets them): EXPLAIN runs it without workers too
    (``max_parallel_workers`` 0), so it is timed as the preview ran it."""
    async with pool.acquire() as conn, conn.transaction():
        if streamed:
            await conn.execute(_NO_WORKERS)
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *params)
    plan = [str(row[0]) for row in rows]
    timing = next((m for line in plan if (m := _EXECUTION.search(line))), None)
    return plan, float(timing.group(1)) if timing else None


async def compiled(pool: DbPool, rule: Rule) -> tuple[str, list[SqlParam]]:
    """The rule's query as ``materialise`` compiles it, now: its tags read as the registry
    defines them."""
    definitions = await tag_store.live_definitions(pool, rule_tags([rule]))
    return segment_query(rule, now=datetime.now(UTC), read_tag=registry_reader(definitions))


async def floor(
    pool: DbPool,
    redis: aioredis.Redis,
    query: str,
    params: Sequence[SqlParam],
    *,
    key: Callable[[int], str],
) -> int:
    """COPY the ids out, group them by shard, ZADD them pipelined; the ids written."""
    chunks: list[bytes] = []

    async def sink(data: bytes) -> None:
        chunks.append(data)

    async with pool.acquire() as conn:
        await conn.copy_from_query(query, *params, output=sink)
    ids = b"".join(chunks).split(b"\n")[:-1]  # one id a line (none needs COPY's escapes)
    await raw_write(redis, group_by_shard(ids, SHARDS), key=key)
    return len(ids)


# --- tables ---------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]], size: int) -> Table:
    """Preview and materialise against the floor, one row per rule."""
    linear = size < TARGET_SIZE
    out = Table(
        "rule", "selected", "preview s", *(["preview s at 1M, linear"] * linear),
        "server ms", "floor s", "materialise s", "materialise / floor",
        f"preview < {PREVIEW_TARGET_S:g} s", f"within {MATERIALISE_TARGET_X:g}x floor",
        title=f"segments at {size:,} profiles, {size * EVENTS_PER_USER:,} events"
        f" ({SHARDS} shards; preview best of {PREVIEW_REPEAT}, materialise best of {REPEAT};"
        " server: EXPLAIN ANALYZE of the preview's query)",
    )  # fmt: skip
    for row in rows:
        scaled = [f"{row['preview_s'] * TARGET_SIZE / size:.2f}"] * linear
        out.add_row(
            row["rule"],
            f"{row['selected']:,}",
            f"{row['preview_s']:.3f}",
            *scaled,
            "" if row["server_ms"] is None else f"{row['server_ms']:,.0f}",
            f"{row['floor_s']:.3f}",
            f"{row['materialise_s']:.3f}",
            f"{row['ratio']:.2f}x",
            _met(row["preview_s"] < PREVIEW_TARGET_S),
            _met(row["ratio"] <= MATERIALISE_TARGET_X),
        )
    return out


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"
