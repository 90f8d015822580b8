"""Run the ingest API with uvicorn against the configured services."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
import uvicorn
from temporalio.client import Client

from activities.db.pool import create_pool
from activities.engagement import EngagementMap
from journeys.channels_config import channels_at
from journeys.policy import policy_at
from journeys.settings import Settings

from ..connect import temporal_client
from .api import create_app


def build_server(
    settings: Settings, *, port: int | None = None, freeze: bool = False
) -> uvicorn.Server:
    """A uvicorn server for the ingest app on ``JOURNEYS_INGEST_HOST:PORT``; ``freeze``
    when the server has the process to itself (:func:`create_app`)."""

    async def connect() -> tuple[Any, aioredis.Redis, Client]:
        client = await temporal_client(settings)
        pool = await create_pool(settings)
        return pool, aioredis.Redis.from_url(settings.redis_url), client

    policy = policy_at(settings.policy_file)
    channels = channels_at(settings.channels_file)
    config = uvicorn.Config(
        create_app(
            connect,
            max_props_bytes=settings.event_props_max_bytes,
            max_props_depth=settings.event_props_max_depth,
            max_body_bytes=settings.ingest_max_body_bytes,
            linger=settings.ingest_linger,
            suppression=policy.suppression if policy is not None else None,
            channels=frozenset(channels.channels) if channels is not None else None,
            engagement=EngagementMap.of(channels, policy),
            freeze=freeze,
        ),
        host=settings.ingest_host,
        port=settings.ingest_port if port is None else port,
        log_level="warning",
        lifespan="on",
    )
    return uvicorn.Server(config)
