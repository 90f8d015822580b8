"""A second floor for the blast: COPY the rows the product itself keeps for each message.

The blast's floor writes one row per user into a table with only a primary key. A page to the
inbox must leave two: its ``deliveries`` row (primary key and the run index) and its ``inbox``
row (primary key and the unread index), whatever the engine. This floor COPYs exactly those
rows into copies of the two tables with all their indexes, so ``blast / rows floor`` shows what
the engine adds over the writes its data model needs, where ``blast / floor`` also counts the
data model.
"""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime

from activities.db.pool import DbPool

TABLES = {"deliveries": "bench_rows_deliveries", "inbox": "bench_rows_inbox"}
DELIVERY_COLUMNS = (
    "idempotency_key", "run_id", "node_id", "user_id", "entry", "channel", "status",
    "attempts", "provider_id", "sent_at",
)  # fmt: skip
INBOX_COLUMNS = ("message_id", "user_id", "channel", "slot", "title", "body", "data")


async def copy_rows(pool: DbPool, users: list[str], *, run_id: str, repeat: int) -> float:
    """Best of ``repeat``: one COPY of N delivery rows and one of N inbox rows, seconds."""
    now = datetime.now(UTC)
    data = json.dumps(
        {"template": "hello", "run_id": run_id, "node_id": "hello", "vars": {}, "expires_at": ""}
    )
    keys = [f"{run_id}:hello:{u}:0" for u in users]
    deliveries = [
        (k, run_id, "hello", u, 0, "inbox", "sent", 1, k, now)
        for k, u in zip(keys, users, strict=True)
    ]
    # jsonb has no binary COPY encoder in asyncpg, so the inbox rows go as CSV (built before
    # the clock starts; PostgreSQL parses every column from text, the jsonb included)
    text = io.StringIO()
    csv.writer(text).writerows(
        (k, u, "inbox", "popup", "Hello", "Hi ", data) for k, u in zip(keys, users, strict=True)
    )
    inbox = text.getvalue().encode()
    best = float("inf")
    for _ in range(repeat):
        async with pool.acquire() as conn:
            for source, table in TABLES.items():
                await conn.execute(f"DROP TABLE IF EXISTS {table}")
                await conn.execute(f"CREATE TABLE {table} (LIKE {source} INCLUDING ALL)")
            try:
                started = time.perf_counter()
                await conn.copy_records_to_table(
                    TABLES["deliveries"], records=deliveries, columns=DELIVERY_COLUMNS
                )
                await conn.copy_to_table(
                    TABLES["inbox"], source=io.BytesIO(inbox), columns=INBOX_COLUMNS, format="csv"
                )
                best = min(best, time.perf_counter() - started)
            finally:
                for table in TABLES.values():
                    await conn.execute(f"DROP TABLE IF EXISTS {table}")
    return best
