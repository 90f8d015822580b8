"""``journeys dev`` / ``worker`` / ``demo``: run the product on this machine."""

from __future__ import annotations

import asyncio
import contextlib

import typer

from journeys.redact import configure_logging
from journeys.settings import get_settings
from worker import run_worker

from .console import out
from .demo import demo_settings, run_demo
from .session import stack_session, wait_forever


def dev(
    worker: bool = typer.Option(True, "--worker/--no-worker", help="Also run a worker."),
) -> None:
    """Start the embedded stack (Temporal + UI, Redis, PostgreSQL), migrate, run a worker.

    Services already answering at their configured addresses are used, not started again.
    Ctrl-C stops everything this command started and nothing else.
    """
    settings = demo_settings(get_settings())

    async def go() -> None:
        async with stack_session(settings, with_worker=worker):
            out.print("[green]ready[/] · Ctrl-C stops the stack")
            await wait_forever()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(go())
    out.print("stopped")


def worker_command() -> None:
    """Run a worker against the configured services (TEMPORAL_ADDRESS, REDIS_URL, ...)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run_worker(settings))


def demo() -> None:
    """Seed demo users, publish the sample plans, run them, show progress and the report.

    Starts the embedded stack when the services are not already running. Leaves the UI up
    until Ctrl-C unless DEMO_EXIT=1.
    """
    settings = demo_settings(get_settings())

    async def go() -> None:
        async with stack_session(settings, with_worker=True):
            await run_demo(settings)
            if not settings.demo_exit:
                out.print(
                    f"the Temporal UI stays up at {settings.temporal_ui_url} · Ctrl-C stops it all"
                )
                await wait_forever()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(go())


def register(app: typer.Typer) -> None:
    """Add the run-it-here commands to ``app``."""
    app.command()(dev)
    app.command("worker")(worker_command)
    app.command()(demo)
