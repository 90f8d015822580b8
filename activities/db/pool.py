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


async def create_pool(settings: Settings, *, max_size: int | None = None) -> DbPool:
    """Open a pool to ``DATABASE_URL`` with JSON codecs installed."""
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=max_size or settings.db_pool_size,
        init=_init_connection,
    )
