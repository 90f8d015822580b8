"""Scenario ``blast_http``: the blast of ``bench.blast`` to a local HTTP provider, beside the
raw-client floor of the same sends.

The same one-step plan and measurement, with the channel an HTTP provider posting to
``bench.fast_receiver`` (signatures checked, in processes of its own): ``batchpush`` posts
50 messages per request, ``push`` one per request. After each blast, ``bench.http_floor``
posts the same number of messages, the same bodies, over the same connections, so each row
says how close the channel comes to what a bare client does here.

Sweeps, each a comma list: ``BENCH_HTTP_CONNECTIONS`` (the channels' ``connections``,
default 16), ``BENCH_HTTP_LATENCY_MS`` (the receiver's answer delay, default 0) and
``BENCH_HTTP_RECEIVERS`` (its processes, default 2); ``BENCH_HTTP_WORKERS`` worker
processes poll beside the bench's own (default 0). A per-message blast expected to take
longer than :data:`LONGEST_S` (its size times the latency over the connections), or larger
than :data:`PER_MESSAGE_UP_TO`, is skipped and says so.
"""

from __future__ import annotations

import asyncio
import json
import os
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

from . import http_floor
from .blast import PAGE_SIZE, measure
from .http_receiver import SECRET
from .results import save

MODES = {"batchpush": 50, "push": 1}  # channel -> messages per request
PATHS = {"batchpush": "batch", "push": "push"}  # the path each channel posts to
PER_MESSAGE_UP_TO = 100_000
LONGEST_S = 300.0


def sweep(name: str, default: int) -> list[int]:
    """The comma list of integers in environment variable ``name``."""
    return [int(part) for part in os.environ.get(name, str(default)).split(",") if part.strip()]


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """The blast over HTTP and its floor in each latency, connection count, size and mode."""
    latencies = sweep("BENCH_HTTP_LATENCY_MS", 0)
    connection_counts = sweep("BENCH_HTTP_CONNECTIONS", 16)
    processes = sweep("BENCH_HTTP_RECEIVERS", 2)[0]
    extra_workers = sweep("BENCH_HTTP_WORKERS", 0)[0]
    rows: list[dict[str, Any]] = []
    received: list[dict[str, int]] = []
    console = Console()
    async with redis_client(settings) as redis, database(settings) as pool:
        for latency in latencies:
            async with receiver_process(latency_ms=latency, processes=processes) as (url, counts):
                for connections in connection_counts:
                    channels = partial(
                        write_channels, receiver_url=url, secret=SECRET, connections=connections
                    )
                    for size in sizes:
                        for mode, batch in MODES.items():
                            shape = {"mode": mode, "size": size, "latency_ms": latency}
                            shape["connections"] = connections
                            expected = size / batch * latency / 1000 / connections
                            too_big = batch == 1 and size > PER_MESSAGE_UP_TO
                            if too_big or expected > LONGEST_S:
                                console.print(f"blast_http: {shape} skipped (too long)")
                                rows.append({**shape, "skipped": True})
                                continue
                            console.print(f"blast_http: {shape} ...")
                            row = await measure(
                                settings,
                                pool,
                                redis,
                                size,
                                PAGE_SIZE,
                                channel=mode,
                                channels=channels,
                                extra_workers=extra_workers,
                            )
                            floor = await http_floor.floor(
                                f"{url}/{PATHS[mode]}",
                                size,
                                batch_size=batch,
                                connections=connections,
                            )
                            vs_floor = row["users_per_s"] / floor["floor_per_s"]
                            rows.append({**shape, **row, **floor, "vs_floor": round(vs_floor, 2)})
            received.append(counts)
    if any(count["bad_signatures"] for count in received):
        raise RuntimeError(f"blast_http: the receiver saw bad signatures: {received}")
    Console(width=180).print(table(rows))
    return save(
        "blast_http",
        rows=rows,
        receiver_processes=processes,
        extra_workers=extra_workers,
        received=received,
    )


@asynccontextmanager
async def receiver_process(
    *, latency_ms: int, processes: int
) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """``python -m bench.fast_receiver``: its URL while it runs, and the counts it prints
    when stopped (filled in on the way out)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.fast_receiver",
        "--processes",
        str(processes),
        "--latency-ms",
        str(latency_ms),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    counts: dict[str, int] = {}
    try:
        url = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"receiver did not start: {url!r}")
        yield url, counts
    finally:
        process.terminate()
        out, _ = await process.communicate()
        if out.strip():
            counts.update(json.loads(out.decode().strip().splitlines()[-1]))


def table(rows: list[dict[str, Any]]) -> Table:
    out = Table(title="blast to a local HTTP provider beside a bare client (16 shards)")
    columns = ("mode", "latency ms", "connections", "ids", "blast s", "msgs/s", "floor msgs/s")
    for column in (*columns, "vs floor", "peak RSS MiB"):
        out.add_column(column, justify="right")
    for row in rows:
        shape = (row["mode"], str(row["latency_ms"]), str(row["connections"]), f"{row['size']:,}")
        if row.get("skipped"):
            out.add_row(*shape, "skipped", "", "", "", "")
            continue
        out.add_row(
            *shape,
            f"{row['blast_s']:.1f}",
            f"{row['users_per_s']:,.0f}",
            f"{row['floor_per_s']:,.0f}",
            f"{row['vs_floor']:.2f}",
            f"{row['peak_rss_mib']:,.0f}",
        )
    return out
