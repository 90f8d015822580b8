"""Connections for CLI commands, with errors that say which service and what to do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import redis.asyncio as aioredis
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.db.pool import DbPool, create_pool
from journeys.errors import ServiceUnavailable
from journeys.redact import redact
from journeys.settings import Settings, get_settings

T = TypeVar("T")

_HINT = "is the stack running? start it with `journeys dev`"


async def temporal_client(settings: Settings) -> Client:
    """A client using the pydantic data converter, like every worker."""
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
        )
    except RuntimeError as exc:
        raise ServiceUnavailable(
            f"cannot reach Temporal at {settings.temporal_address} ({_HINT})"
        ) from exc


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Any]:
    """A pool to PostgreSQL, closed on exit."""
    try:
        pool = await create_pool(settings, max_size=4)
    except (OSError, ConnectionError) as exc:
        raise ServiceUnavailable(
            f"cannot reach PostgreSQL at {redact(settings.database_url)} ({_HINT})"
        ) from exc
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def redis_client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A Redis client, checked with PING, closed on exit."""
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        await client.ping()
    except (OSError, aioredis.ConnectionError) as exc:
        await client.aclose()
        where = redact(settings.redis_url)
        raise ServiceUnavailable(f"cannot reach Redis at {where} ({_HINT})") from exc
    try:
        yield client
    finally:
        await client.aclose()


def on_database(work: Callable[[DbPool], Awaitable[T]]) -> T:
    """``work`` on a pool to the configured database, from a synchronous command."""

    async def go() -> T:
        async with database(get_settings()) as pool:
            result: T = await work(pool)
            return result

    return asyncio.run(go())
