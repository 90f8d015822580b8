"""The embedded stack plus a worker, as ``journeys dev`` and ``journeys demo`` run them."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from rich.table import Table

from activities.db import queries
from activities.db.migrate import migrate
from journeys.redact import redact
from journeys.settings import Settings
from worker import run_worker

from .connect import database
from .console import out
from .stack.devstack import DevStack, ServiceState


def _describe(settings: Settings, states: list[ServiceState]) -> Table:
    urls = {
        "postgres": settings.database_url,
        "redis": settings.redis_url,
        "temporal": settings.temporal_address,
    }
    table = Table("service", "address", "state", "pid", title="Journeys embedded stack")
    for state in states:
        name = state.service.name
        table.add_row(name, urls[name], state.origin.value, str(state.pid or ""))
    return table


@asynccontextmanager
async def stack_session(settings: Settings, *, with_worker: bool) -> AsyncIterator[None]:
    """Start (or find) the services, migrate, optionally run a worker; stop what we started."""
    _cancel_on_sigterm()
    stack = DevStack(settings)
    states = await stack.start()
    worker_task: asyncio.Task[None] | None = None
    try:
        applied = await migrate(settings.database_url)
        out.print(_describe(settings, states))
        if applied:
            out.print(f"migrations applied: {', '.join(applied)}")
        out.print(
            f"Temporal UI: [link={settings.temporal_ui_url}]{settings.temporal_ui_url}[/link]"
        )
        out.print(
            "environment for other shells: "
            f"TEMPORAL_ADDRESS={settings.temporal_address} REDIS_URL={redact(settings.redis_url)} "
            f"DATABASE_URL={redact(settings.database_url)}",
            soft_wrap=True,
        )
        async with database(settings) as pool:
            keyed = bool(await pool.fetchval(queries.API_KEYS_ACTIVE))
        if not keyed:
            out.print(
                "HTTP API keys: none yet, so `journeys serve` is open to whoever reaches it; "
                "create the first with `journeys keys create NAME --scope admin`",
                soft_wrap=True,
            )
        if with_worker:
            ready = asyncio.Event()
            worker_task = asyncio.create_task(run_worker(settings, ready=ready))
            await _first_of(ready, worker_task)
            out.print(f"worker polling task queue [bold]{settings.temporal_task_queue}[/]")
        yield
    finally:
        if worker_task is not None:
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker_task
        stack.stop()


async def _first_of(ready: asyncio.Event, worker_task: asyncio.Task[None]) -> None:
    """Wait for the worker to be ready; surface its error if it dies first."""
    waiter = asyncio.ensure_future(ready.wait())
    done, _ = await asyncio.wait({waiter, worker_task}, return_when=asyncio.FIRST_COMPLETED)
    if worker_task in done:
        waiter.cancel()
        worker_task.result()  # raises the worker's start-up error


def _cancel_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C so a supervisor's stop also stops our children."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def wait_forever() -> None:
    """Park until Ctrl-C / SIGTERM cancels us."""
    await asyncio.Event().wait()
