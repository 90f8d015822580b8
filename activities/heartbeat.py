"""Heartbeats on a clock for activities that may wait long on something outside."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity


@asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat on a clock while the block runs: a page that waits on a slow provider or
    a rate limit is alive, and one on a killed worker is noticed within the timeout."""
    timeout = activity.info().heartbeat_timeout
    every = (timeout / 3).total_seconds() if timeout else 10.0

    async def beat() -> None:
        # Not at once: a page done within the first interval never heartbeats, which spares
        # the server a write per page (a thousand at a million users in pages of 1,000).
        while True:
            await asyncio.sleep(every)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
