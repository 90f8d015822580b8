"""The asyncpg pool every process shares."""

from __future__ import annotations

import json
from typing import TypeAlias

import asyncpg

from journeys.settings import Settings

DbPool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
"""The type every holder of the shared pool names."""


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    # jsonb in and out as Python objects, so queries never hand-encode JSON.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


# asyncpg prepares every query once per connection, and after five runs PostgreSQL keeps a
# generic plan for it. A plan made while a table is young (a run's first seconds of entries)
# stays until autoanalyze next looks at the table, even as the table grows a hundredfold: the
# event-id check of entry admission then scanned every entry of its run, 40 ms at 80,000 rows
# and seconds of p99 in the events soak's second minute. Custom plans follow the table.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


async def create_pool(settings: Settings, *, max_size: int | None = None) -> DbPool:
    """Open a pool to ``DATABASE_URL`` with JSON codecs installed."""
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=max_size or settings.db_pool_size,
        init=_init_connection,
        server_settings=SERVER_SETTINGS,
    )
