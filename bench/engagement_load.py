"""Scenario ``engagement_load``: does recording engagement slow a running blast?

For each size N, in the same run, alternating :data:`ROUNDS` times: a blast of N users to
the inbox (as ``bench blast``, 16 shards) on its own, then the same blast while the ingest
API (``journeys serve``, its own process, as deployed) takes :data:`RATE` click events a
second in batches of :data:`BATCH`: events the channels file maps to the inbox channel's
``clicked``, without a message key, for users of the blast, so each one looks up the user's
last message (``deliveries_user_sent``) while the blast writes the ledger; and the same load
of an event nothing maps, which the ingest stores and routes but attributes to nothing (what
the load costs without engagement). Best of each.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table

from activities.db.pool import DbPool
from journeys.contracts.runs import RunOptions
from journeys.settings import Settings
from starter.client import Journeys
from starter.connect import database, redis_client
from starter.stack.probes import free_port
from tests.conftest import spawn_journeys
from tests.engine import (
    for_test,
    settings_env,
    start_blast,
    worker_running,
    write_ids,
    write_plan,
)

from .blast import CONCURRENCY, PAGE_SIZE, SHARDS, forget_run, write_channels
from .results import save

RATE = 1_000
BATCH = 100
ROUNDS = 2
EVENT = "inbox_tapped"
OTHER = "page_viewed"
"""The same load of an event nothing maps: what storing the events costs without
engagement."""
MODES = ("quiet", "mapped", "unmapped")


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """Measure every size, print the table, write JSON results."""
    rows = []
    async with redis_client(settings) as redis, database(settings) as pool:
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix="bench-engagement-") as tmp:
                rows.append(await measure(settings, pool, redis, size, Path(tmp)))
    Console(width=120).print(table(rows))
    return save("engagement_load", rows=rows, rate=RATE, batch=BATCH, rounds=ROUNDS)


async def measure(
    settings: Settings, pool: DbPool, redis: Any, size: int, directory: Path
) -> dict[str, Any]:
    """Alternate quiet and loaded blasts of ``size``; the best of each and the events sent."""
    channels = write_channels(directory)
    body = yaml.safe_load(channels.read_text())
    for channel in body["channels"].values():
        channel["engagement"] = {"clicked": EVENT}
    channels.write_text(yaml.safe_dump(body))
    port = free_port()
    own = for_test(settings, channels).model_copy(update={"ingest_port": port})
    env = settings_env(own, channels=channels) | {"JOURNEYS_INGEST_PORT": str(port)}
    server = await spawn_journeys("serve", env=env, stdout=None, stderr=None)
    url = f"http://{own.ingest_host}:{port}"
    try:
        await _healthy(url)
        best = {mode: float("inf") for mode in MODES}
        sent = dict.fromkeys(MODES, 0)
        for n in range(ROUNDS * len(MODES)):
            mode = MODES[n % len(MODES)]
            plan = write_plan(
                directory, channel="inbox", shards=SHARDS, page_size=PAGE_SIZE,
                concurrency=CONCURRENCY,
            )  # fmt: skip
            ids = write_ids(directory, size, prefix=f"eng{n}")
            users = [line.strip() for line in ids.read_text().splitlines() if line.strip()]
            load = None if mode == "quiet" else (url, EVENT if mode == "mapped" else OTHER)
            seconds, events = await _blast(own, pool, redis, plan, ids, load, users)
            best[mode] = min(best[mode], seconds)
            sent[mode] += events
    finally:
        server.terminate()
        await server.wait()
    return {
        "size": size,
        "quiet_s": best["quiet"],
        "loaded_s": best["mapped"],
        "unmapped_s": best["unmapped"],
        "ratio": best["mapped"] / best["quiet"],
        "unmapped_ratio": best["unmapped"] / best["quiet"],
        "events_sent": sent["mapped"],
    }


async def _blast(
    own: Settings,
    pool: DbPool,
    redis: Any,
    plan: Path,
    ids: Path,
    load: tuple[str, str] | None,
    users: list[str],
) -> tuple[float, int]:
    stop = asyncio.Event()
    async with worker_running(own):
        loader = asyncio.create_task(_load(*load, users, stop)) if load else None
        started = time.perf_counter()
        launched, handle = await start_blast(
            own, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=RunOptions()
        )
        await handle.result()
        seconds = time.perf_counter() - started
        stop.set()
        events = await loader if loader else 0
    await forget_run(pool, launched.run_id)
    await pool.execute("DELETE FROM engagements WHERE run_id = $1", launched.run_id)
    return seconds, events


async def _load(url: str, event: str, users: list[str], stop: asyncio.Event) -> int:
    """Post :data:`RATE` events a second until ``stop``; how many were accepted."""
    picks = random.Random(7)
    sent = 0
    async with Journeys(url) as journeys:
        tick = time.perf_counter()
        while not stop.is_set():
            batch = [{"user_id": picks.choice(users), "name": event} for _ in range(BATCH)]
            sent += (await journeys.send_events(batch)).accepted
            tick += BATCH / RATE
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))
    return sent


async def _healthy(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(200):
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the ingest API did not come up")


def table(rows: list[dict[str, Any]]) -> Table:
    """Quiet against loaded, per size."""
    out = Table(
        "users", "blast alone", f"with {RATE:,} clicks/s", "ratio", "within 10%",
        f"with {RATE:,} unmapped events/s", "ratio",
    )  # fmt: skip
    for row in rows:
        out.add_row(
            f"{row['size']:,}", f"{row['quiet_s']:.2f} s", f"{row['loaded_s']:.2f} s",
            f"{row['ratio']:.2f}x", "yes" if row["ratio"] <= 1.10 else "NO",
            f"{row['unmapped_s']:.2f} s", f"{row['unmapped_ratio']:.2f}x",
        )  # fmt: skip
    return out
