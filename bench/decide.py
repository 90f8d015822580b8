"""Scenario ``decide``: latency of ``POST /v1/decide`` at a steady rate, beside its floor.

Seed 004's instance (``examples/decisions``) over :data:`USERS` profiles (a third each low,
medium and high risk). Each server is its own process (as deployed): a bare endpoint on the
same stack (:mod:`bench.bare_endpoint`, the floor), ``journeys serve``, and two ``journeys
serve`` processes taking turns. Against each, an open loop posts :data:`RATE` requests a
second for :data:`DURATION` after :data:`WARM_UP` (aiohttp, :data:`CONNECTIONS` connections,
random users); a request's latency runs from the moment it was due, so a late sender counts
against the server, not for it. Then a closed loop for :data:`CEILING` seconds gives the
throughput. The cache hit ratio is read from the servers' ``/metrics``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import yaml
from rich.console import Console
from rich.table import Table

from activities.db import decision_store
from journeys.decisions.model import Instance, Scene
from journeys.settings import Settings
from starter.connect import database
from starter.stack.probes import free_port
from tests.conftest import ROOT, spawn_journeys
from tests.engine import settings_env
from tests.tag_kit import publish_tags

from .results import save

RATE = 1_000
DURATION = 60.0
WARM_UP = 10.0
"""Seconds at :data:`RATE` before the measured minute: a process that has run a while holds
most callers' tag values (the hit ratio is reported)."""
CEILING = 10.0
CONNECTIONS = 64
USERS = 10_000
EXAMPLES = ROOT / "examples" / "decisions"
SHAPES = (("bare endpoint", 0), ("journeys serve", 1), ("journeys serve x2", 2))


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """Measure each server shape, print the table, write JSON results."""
    del sizes
    users = await prepare(settings)
    rows = []
    for name, processes in SHAPES:
        async with servers(settings, processes) as urls:
            await open_loop(urls, users, duration=WARM_UP)
            steady = await open_loop(urls, users, duration=DURATION)
            ceiling = await closed_loop(urls, users)
            hits, misses = await cache_counts(urls) if processes else (0, 0)
        rows.append({"shape": name, "processes": max(processes, 1), **steady,
                     "ceiling_per_s": ceiling, "cache_hits": hits, "cache_misses": misses,
                     "hit_ratio": hits / (hits + misses) if hits + misses else None})  # fmt: skip
    Console(width=140).print(table(rows))
    return save("decide", rows=rows, rate=RATE, duration_s=DURATION, connections=CONNECTIONS)


async def prepare(settings: Settings) -> list[str]:
    """The example tags, scene and instance published; the users' profiles stored."""
    users = [f"dec-{n:05d}" for n in range(USERS)]
    risks = ("low", "medium", "high")
    async with database(settings) as pool:
        await publish_tags(pool, ROOT / "examples" / "tags.yaml")
        scene = Scene.model_validate(yaml.safe_load((EXAMPLES / "payment.scene.yaml").read_text()))
        await decision_store.define_scene(pool, scene)
        body = yaml.safe_load((EXAMPLES / "checkout-instalments.yaml").read_text())
        instance = Instance.model_validate(body)
        await decision_store.save_draft(pool, instance)
        await decision_store.publish(pool, instance.instance)
        await pool.execute(
            "INSERT INTO users (user_id, attrs) SELECT * FROM unnest($1::text[], $2::jsonb[])"
            " ON CONFLICT (user_id) DO UPDATE SET attrs = EXCLUDED.attrs",
            users,
            [{"risk_level": risks[n % 3]} for n in range(USERS)],
        )
    return users


@asynccontextmanager
async def servers(settings: Settings, processes: int) -> AsyncIterator[list[str]]:
    """``processes`` ``journeys serve`` processes (0: the bare endpoint), each on its port."""
    ports = [free_port() for _ in range(max(processes, 1))]
    if processes:
        env = settings_env(settings)
        procs = [
            await spawn_journeys(
                "serve", env=env | {"JOURNEYS_INGEST_PORT": str(port)}, stdout=None, stderr=None
            )
            for port in ports
        ]
    else:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.bare_endpoint", str(ports[0]), cwd=ROOT
            )
        ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url in urls:
            await _answering(url)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
            await proc.wait()


async def _answering(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.post(f"{url}/v1/decide", json=_body("dec-00000")) as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _body(user: str) -> dict[str, Any]:
    return {"instance": "checkout-instalments", "user_id": user,
            "fields": {"channel": "app", "amount": 199}}  # fmt: skip


async def open_loop(
    urls: Sequence[str], users: Sequence[str], *, duration: float
) -> dict[str, Any]:
    """:data:`RATE` a second for ``duration`` s; latency from each request's due time.

    The sender keeps no finished request and runs without the garbage collector (it is not
    what is measured; its pauses would count against the server)."""
    picks = random.Random(19)
    latencies: list[float] = []
    errors = 0
    pending: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    gc.collect()
    gc.disable()
    try:
        async with aiohttp.ClientSession(connector=connector) as http:

            async def one(n: int, due: float) -> None:
                nonlocal errors
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                body = json.dumps(_body(picks.choice(users)))
                try:
                    async with http.post(
                        f"{urls[n % len(urls)]}/v1/decide",
                        data=body,
                        headers={"content-type": "application/json"},
                    ) as answer:
                        await answer.read()
                        ok = answer.status == 200
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - due)
                errors += not ok

            start = time.perf_counter() + 0.5
            total = int(RATE * duration)
            for n in range(total):  # each created up to 50 ms ahead of its moment
                due = start + n / RATE
                await asyncio.sleep(max(0.0, due - time.perf_counter() - 0.05))
                task = asyncio.create_task(one(n, due))
                pending.add(task)
                task.add_done_callback(pending.discard)
            while pending:
                await asyncio.wait(set(pending))
            took = time.perf_counter() - start
    finally:
        gc.enable()
    ms = sorted(x * 1000 for x in latencies)
    return {"sent": total, "errors": errors, "achieved_per_s": total / took,
            "p50_ms": ms[len(ms) // 2], "p95_ms": ms[int(len(ms) * 0.95)],
            "p99_ms": ms[int(len(ms) * 0.99)], "max_ms": ms[-1],
            "mean_ms": statistics.fmean(ms)}  # fmt: skip


async def closed_loop(urls: Sequence[str], users: Sequence[str]) -> float:
    """Requests a second with :data:`CONNECTIONS` callers each waiting for its answer."""
    picks = random.Random(4)
    done = 0
    stop = time.perf_counter() + CEILING
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def caller(k: int) -> None:
            nonlocal done
            url = f"{urls[k % len(urls)]}/v1/decide"
            while time.perf_counter() < stop:
                async with http.post(url, json=_body(picks.choice(users))) as answer:
                    await answer.read()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(caller(k) for k in range(CONNECTIONS)))
        return done / (time.perf_counter() - started)


async def cache_counts(urls: Sequence[str]) -> tuple[int, int]:
    """The servers' tag-value cache hits and misses, from ``/metrics``."""
    hits = misses = 0
    async with aiohttp.ClientSession() as http:
        for url in urls:
            async with http.get(f"{url}/metrics") as answer:
                for line in (await answer.text()).splitlines():
                    name, _, value = line.partition(" ")
                    if name == "journeys_ingest_decide_cache_hits":
                        hits += int(value)
                    elif name == "journeys_ingest_decide_cache_misses":
                        misses += int(value)
    return hits, misses


def table(rows: list[dict[str, Any]]) -> Table:
    """One row per server shape."""
    out = Table("server", f"sent at {RATE:,}/s", "achieved/s", "errors", "p50", "p95", "p99",
                "max", "p99 < 10 ms", "ceiling/s", "cache hits")  # fmt: skip
    for r in rows:
        ratio = "-" if r["hit_ratio"] is None else f"{r['hit_ratio']:.1%}"
        out.add_row(r["shape"], f"{r['sent']:,}", f"{r['achieved_per_s']:,.0f}", str(r["errors"]),
                    f"{r['p50_ms']:.2f} ms", f"{r['p95_ms']:.2f} ms", f"{r['p99_ms']:.2f} ms",
                    f"{r['max_ms']:.1f} ms", "yes" if r["p99_ms"] < 10 else "NO",
                    f"{r['ceiling_per_s']:,.0f}", ratio)  # fmt: skip
    return out
