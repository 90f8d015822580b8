"""``python -m bench [scenario ...] [--sizes 10000,100000,1000000] [--skip-largest]``.

Runs against the services of the environment settings (``REDIS_URL``, ``DATABASE_URL``,
``TEMPORAL_ADDRESS``). When they do not answer, it starts a private embedded stack on free ports
under a temporary home for each scenario and stops it afterwards. Each scenario prints its
table and writes its JSON under ``bench/results/`` (git-ignored); docs/benchmarks.md keeps the
numbers worth keeping.

A scenario is ``async def run(settings, sizes) -> result``; add yours to :data:`SCENARIOS`.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from activities.db.migrate import migrate
from bench import (
    blast,
    blast_http,
    controls,
    decide,
    engagement_load,
    events,
    events_soak,
    events_tail,
    per_user,
    profiles,
    report,
    scale_out,
    segments,
    targets,
    triggers,
    upload,
)
from journeys.settings import Settings, get_settings
from starter.stack.devstack import DevStack
from starter.stack.probes import free_port, host_port, is_listening

Scenario = Callable[[Settings, list[int]], Awaitable[Any]]

SCENARIOS: dict[str, Scenario] = {
    "upload": upload.run,
    "profiles": profiles.run,
    "blast": blast.run,
    "blast_http": blast_http.run,
    "events": events.run,
    "events_tail": events_tail.run,
    "events_soak": events_soak.run,
    "triggers": triggers.run,
    "per_user": per_user.run,
    "scale_out": scale_out.run,
    "segments": segments.run,
    "controls": controls.run,
    "report": report.run,
    "engagement_load": engagement_load.run,
    "decide": decide.run,
}
ON_REQUEST = ("events_tail", "events_soak")
"""Scenarios of half an hour or more: run only when named, not in the default ``make bench``."""
DEFAULT_SIZES = [10_000, 100_000, 1_000_000]

console = Console(highlight=False)


def sizes_argument(text: str) -> list[int]:
    """``10000,100000`` (``_`` separators allowed) -> sorted positive sizes."""
    try:
        sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Journeys benchmarks, against the configured services or a private stack.",
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="scenario",
        help=f"one of {', '.join(SCENARIOS)} (all but {', '.join(ON_REQUEST)})",
    )
    parser.add_argument(
        "--sizes",
        type=sizes_argument,
        default=DEFAULT_SIZES,
        help="comma-separated numbers of ids (default 10000,100000,1000000)",
    )
    parser.add_argument(
        "--skip-largest", action="store_true", help="drop the largest size (a quick run)"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    args.scenarios = args.scenarios or [name for name in SCENARIOS if name not in ON_REQUEST]
    if args.skip_largest:
        args.sizes = args.sizes[:-1] or args.sizes
    return args


def reachable(settings: Settings) -> bool:
    """Redis, PostgreSQL and Temporal all accept connections at their configured addresses."""
    return all(
        is_listening(*host_port(address, default_port=port))
        for address, port in (
            (settings.redis_url, 6379),
            (settings.database_url, 5432),
            (settings.temporal_address, 7233),
        )
    )


def temporary_home() -> Path:
    """A fresh directory for a private stack's data, logs and pid files."""
    home = Path(tempfile.mkdtemp(prefix="journeys-bench-"))
    # mkdtemp makes it 0700; PostgreSQL runs as another user (with root's group when we are
    # root), so it needs group and other traversal to reach its data directory.
    home.chmod(0o755)
    return home


def private_settings(
    settings: Settings, *, home: Path, port: Callable[[], int] = free_port
) -> Settings:
    """``settings`` pointed at a private stack under ``home``, each service on ``port()``."""
    return settings.model_copy(
        update={
            "temporal_address": f"127.0.0.1:{port()}",
            "redis_url": f"redis://127.0.0.1:{port()}/0",
            "database_url": f"postgresql://postgres@127.0.0.1:{port()}/journeys",
            "home": home,
        }
    )


@asynccontextmanager
async def services(settings: Settings) -> AsyncIterator[Settings]:
    """The configured services, or a private embedded stack that is stopped on exit."""
    if reachable(settings):
        console.print(f"using the configured services (Redis {settings.redis_url})")
        yield settings
        return
    home = temporary_home()
    private = private_settings(settings, home=home)
    console.print(f"configured services not reachable: starting an embedded stack in {home}")
    stack = DevStack(private, home=home, ui=False)
    try:
        await stack.start()
        await migrate(private.database_url)
        yield private
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


async def run(names: list[str], sizes: list[int]) -> None:
    # Each scenario gets a stack of its own when the runner starts one: a scenario measured
    # after a million-user blast would otherwise pay for its dead rows (autovacuum) and its
    # histories, and the order of scenarios would change the figures.
    results: dict[str, Any] = {}
    for name in names:
        async with services(get_settings()) as settings:
            console.rule(f"{name}: sizes {', '.join(f'{s:,}' for s in sizes)}")
            results[name] = await SCENARIOS[name](settings, sizes)
    targets.report(results)


def compile_workflow_code() -> None:
    """Write the bytecode of the project's packages, as ``pip install`` does for the image.

    The sandbox imports workflow modules afresh for every workflow it starts; with no
    bytecode on disk (an editable install under ``PYTHONDONTWRITEBYTECODE=1``, as on the
    machines we measure on) each of those imports compiles the source again, about 40 ms per
    shard workflow, which is a cost of the checkout, not of the design."""
    root = Path(__file__).resolve().parent.parent
    for package in ("journeys", "workflows", "activities"):
        compileall.compile_dir(root / package, quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compile_workflow_code()
    try:
        asyncio.run(run(args.scenarios, args.sizes))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal SDK (used to probe the embedded stack) can abort at interpreter shutdown
    # (sdk-python#300): leave without finalizers once the output is flushed.
    os._exit(code)
