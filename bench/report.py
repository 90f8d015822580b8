"""Scenario ``report``: ``journeys report RUN`` over a run of N users.

For each size N: a real blast of N users to the inbox (as ``bench blast``, 16 shards), then
rows a run with a split and engagement would leave, written server-side from its ledger:
an ``assignments`` row per user (a quarter in a control arm), a conversion for one user in
20 (value 10), and ``engagements`` for one in 3 opened, one in 10 clicked and one in 200
unsubscribed (cost 2). Then ``run_report`` (what the command runs, the Temporal lookup
included), best of :data:`REPEAT`, and each of its queries on its own under ``EXPLAIN
ANALYZE`` (its server time; the per-user arm queries of a split with a winner are not among
them: this split has none). The rows are deleted afterwards.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from activities.db import queries
from activities.db.pool import DbPool
from journeys.contracts.runs import RunOptions
from journeys.settings import Settings
from starter.connect import database, redis_client
from starter.report import run_report
from tests.engine import client_for, for_test, start_blast, worker_running, write_ids, write_plan

from .blast import CONCURRENCY, PAGE_SIZE, SHARDS, forget_run, write_channels
from .results import save

REPEAT = 3
SEED = (
    """INSERT INTO assignments (run_id, node_id, user_id, arm, control, bucket, assigned_at)
    SELECT run_id, 'split', user_id,
           CASE WHEN hashtext(user_id) & 3 = 0 THEN 'holdout' ELSE 'offer' END,
           hashtext(user_id) & 3 = 0, abs(hashtext(user_id)) % 10000, now()
    FROM deliveries WHERE run_id = $1""",
    """INSERT INTO conversions (run_id, user_id, entry, event_name, ts, value, arm, arm_node,
                               last_message, last_node, last_channel)
    SELECT d.run_id, d.user_id, 0, 'order_placed',
           now() - (abs(hashtext(d.user_id || 't')) % 18000) * interval '1 second', 10,
           CASE WHEN hashtext(d.user_id) & 3 = 0 THEN 'holdout' ELSE 'offer' END, 'split',
           d.idempotency_key, d.node_id, d.channel
    FROM deliveries d
    WHERE d.run_id = $1 AND abs(hashtext(d.user_id || 'c')) % 20 = 0""",
    """INSERT INTO engagements (message_key, kind, event_name, run_id, node_id, user_id,
                               channel, cost, ts)
    SELECT d.idempotency_key, k.kind, k.kind, d.run_id, d.node_id, d.user_id, d.channel,
           k.cost, now()
    FROM deliveries d
    CROSS JOIN (VALUES ('opened', 3, NULL::numeric), ('clicked', 10, NULL),
                       ('negative', 200, 2)) AS k(kind, every, cost)
    WHERE d.run_id = $1 AND abs(hashtext(d.user_id || k.kind)) % k.every = 0""",
)
FORGET = (
    "DELETE FROM assignments WHERE run_id = $1",
    "DELETE FROM conversions WHERE run_id = $1",
    "DELETE FROM engagements WHERE run_id = $1",
)
QUERIES = {
    name: getattr(queries, name)
    for name in (
        "REPORT_DELIVERIES",
        "REPORT_ENGAGEMENT",
        "REPORT_ARM_USERS",
        "REPORT_ARM_CONVERSIONS",
        "REPORT_CONVERSIONS",
        "REPORT_TIMELINE",
        "REPORT_WINNERS",
    )
}


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """Measure every size, print the table, write ``bench/results/report-<date>.json``."""
    rows = []
    async with redis_client(settings) as redis, database(settings) as pool:
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
                directory = Path(tmp)
                own = for_test(settings, write_channels(directory))
                plan = write_plan(
                    directory,
                    channel="inbox",
                    shards=SHARDS,
                    page_size=PAGE_SIZE,
                    concurrency=CONCURRENCY,
                )
                ids = write_ids(directory, size, prefix="report")
                async with worker_running(own):
                    launched, handle = await start_blast(
                        own, pool=pool, redis=redis, plan_file=plan, ids_file=ids,
                        options=RunOptions(),
                    )  # fmt: skip
                    await handle.result()
                run_id = launched.run_id
                try:
                    rows.append(await measure(pool, await client_for(own), run_id, size))
                finally:
                    for statement in FORGET:
                        await pool.execute(statement, run_id)
                    await forget_run(pool, run_id)
    Console(width=140).print(table(rows))
    return save("report", rows=rows, repeat=REPEAT)


async def measure(pool: DbPool, client: Any, run_id: str, size: int) -> dict[str, Any]:
    """Seed the run's split and engagement, then time the report and each query."""
    started = time.perf_counter()
    for statement in SEED:
        await pool.execute(statement, run_id)
        # fresh rows without statistics make the planner pick nested loops for the joins
        await pool.execute("ANALYZE assignments, conversions, engagements, deliveries")
    seed_s = time.perf_counter() - started
    best = float("inf")
    for _ in range(REPEAT):
        started = time.perf_counter()
        report = await run_report(pool, client, run_id, costs={"inbox": 0.001})
        best = min(best, time.perf_counter() - started)
    assert report.delivered == size and report.splits["split"], "the seeded rows are read"
    servers: dict[str, float] = {}
    for name, sql in QUERIES.items():
        plan = await pool.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", run_id)
        servers[name] = float(json.loads(plan)[0]["Execution Time"]) / 1000
    return {
        "size": size,
        "run_id": run_id,
        "seed_s": round(seed_s, 2),
        "report_s": round(best, 3),
        "clicked": report.clicked,
        "converted": report.converted,
        "server_s": {k: round(v, 3) for k, v in servers.items()},
    }


def table(rows: list[dict[str, Any]]) -> Table:
    """One row per size: the report's time, and the slowest of its queries."""
    out = Table("users", "report (best of 3)", "under 2 s", "slowest query (server)", "all queries")
    for row in rows:
        slowest = max(row["server_s"].items(), key=lambda kv: kv[1])
        out.add_row(
            f"{row['size']:,}",
            f"{row['report_s']:.2f} s",
            "yes" if row["report_s"] < 2 else "NO",
            f"{slowest[0]} {slowest[1]:.2f} s",
            f"{sum(row['server_s'].values()):.2f} s",
        )
    return out
