"""Scenario ``blast_http``: the blast of ``bench.blast`` to a local HTTP receiver.

The same one-step plan and measurement, with the channel an HTTP provider posting to the
tests' recording receiver (signature checked, idempotency keys de-duplicated), run in a
process of its own: ``batchpush`` posts 50 messages per request, ``push`` one per request.
Per-message mode runs at sizes up to :data:`PER_MESSAGE_UP_TO` (about 270 requests/s per
worker, so 1,000,000 would take an hour); larger sizes are skipped and say so.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from rich.console import Console
from rich.table import Table

from journeys.settings import Settings
from starter.connect import database, redis_client
from tests.engine import write_channels

from .blast import PAGE_SIZE, measure
from .http_receiver import SECRET
from .results import save

MODES = ("batchpush", "push")
PER_MESSAGE_UP_TO = 100_000


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """The blast over HTTP in each mode and size; table and JSON."""
    rows: list[dict[str, Any]] = []
    async with (
        receiver_process() as url,
        redis_client(settings) as redis,
        database(settings) as pool,
    ):
        channels = partial(write_channels, receiver_url=url, secret=SECRET)
        for size in sizes:
            for mode in MODES:
                if mode == "push" and size > PER_MESSAGE_UP_TO:
                    Console().print(
                        f"blast_http: {size:,} per message skipped (over {PER_MESSAGE_UP_TO:,})"
                    )
                    rows.append({"mode": mode, "size": size, "skipped": True})
                    continue
                Console().print(f"blast_http: {size:,} ids, {mode} ...")
                row = await measure(
                    settings, pool, redis, size, PAGE_SIZE, channel=mode, channels=channels
                )
                rows.append({"mode": mode, **row})
    Console(width=160).print(table(rows))
    return save("blast_http", rows=rows)


@asynccontextmanager
async def receiver_process() -> AsyncIterator[str]:
    """``python -m bench.http_receiver``; its URL while it runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.http_receiver", stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        url = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"receiver did not start: {url!r}")
        yield url
    finally:
        process.terminate()
        await process.wait()


def table(rows: list[dict[str, Any]]) -> Table:
    out = Table(title="blast to a local HTTP receiver (16 shards, pages of 1,000)")
    for column in ("mode", "ids", "blast s", "users/s", "blast / floor", "peak RSS MiB"):
        out.add_column(column, justify="right")
    for row in rows:
        if row.get("skipped"):
            out.add_row(row["mode"], f"{row['size']:,}", "skipped", "", "", "")
            continue
        out.add_row(
            row["mode"],
            f"{row['size']:,}",
            f"{row['blast_s']:.1f}",
            f"{row['users_per_s']:,.0f}",
            f"{row['ratio']:.1f}",
            f"{row['peak_rss_mib']:,.0f}",
        )
    return out
