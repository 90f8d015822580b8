"""Scenario ``upload``: the audience upload path against a raw pipelined write of the same ids.

For each size, in the same run and against the same Redis:

- **floor**: ZADD the ids (pre-split into 16 keys, no parsing, no hashing) with the batching and
  pipelining ``write_shards`` uses: what the client and server cost no matter what we do;
- **upload**: ``read_audience_file`` + ``write_shards``, the whole upload minus the CLI;
- **parse**: ``read_audience_file`` alone.

The three are interleaved ``REPEAT`` times and the fastest of each is kept, so a noisy
neighbour slows one sample, not the comparison.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table

from activities.audience.shard_sets import FLUSH_MEMBERS, write_shards
from journeys.audience_file import read_audience_file
from journeys.names import audience_shard_key
from journeys.settings import Settings
from starter.connect import redis_client

from .results import save

SHARDS = 16
BATCH = 1000  # write_shards' default batch_size
REPEAT = 3


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """Measure every size, print the table, write ``bench/results/upload-<date>.json``."""
    rows = []
    async with redis_client(settings) as redis:
        for size in sizes:
            rows.append(await measure(redis, size))
    Console(width=120).print(table(rows))
    return save(
        "upload",
        rows=rows,
        shards=SHARDS,
        batch_size=BATCH,
        flush_members=FLUSH_MEMBERS,
        repeat=REPEAT,
    )


async def measure(redis: aioredis.Redis, size: int) -> dict[str, Any]:
    """One size: the three measurements, interleaved, best of ``REPEAT``."""
    ids = [f"user-{i:07d}" for i in range(1, size + 1)]
    tag = uuid.uuid4().hex[:8]
    floor_key = partial(audience_shard_key, f"bench-floor-{tag}")
    upload_key = partial(audience_shard_key, f"bench-upload-{tag}")
    groups = [ids[k::SHARDS] for k in range(SHARDS)]
    samples: dict[str, list[float]] = {"floor": [], "upload": [], "parse": []}
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        path = Path(tmp) / "audience.csv"
        path.write_text("user_id\n" + "\n".join(ids) + "\n")

        async def floor() -> None:
            await raw_write(redis, groups, key=floor_key)

        async def upload() -> None:
            parsed = read_audience_file(path)
            counts = await write_shards(
                redis, parsed.ids, shards=SHARDS, key=upload_key, batch_size=BATCH
            )
            if sum(counts) != size:
                raise RuntimeError(f"upload wrote {sum(counts)} of {size} ids")

        async def parse() -> None:
            read_audience_file(path)

        steps: dict[str, Callable[[], Awaitable[None]]] = {
            "floor": floor,
            "upload": upload,
            "parse": parse,
        }
        try:
            for _ in range(REPEAT):
                for name, step in steps.items():
                    await delete_shards(redis, floor_key, upload_key)
                    started = time.perf_counter()
                    await step()
                    samples[name].append(time.perf_counter() - started)
        finally:
            await delete_shards(redis, floor_key, upload_key)
    best = {name: min(values) for name, values in samples.items()}
    return {
        "size": size,
        **{f"{name}_s": round(value, 4) for name, value in best.items()},
        "ratio": round(best["upload"] / best["floor"], 2),
        "samples": {name: [round(v, 4) for v in values] for name, values in samples.items()},
    }


async def raw_write(
    redis: aioredis.Redis, groups: Sequence[Sequence[str | bytes]], *, key: Callable[[int], str]
) -> None:
    """The floor: pipelined ZADDs of ready-made groups, batched like ``write_shards``."""
    pipe = redis.pipeline(transaction=False)
    queued = 0
    for shard, members in enumerate(groups):
        for low in range(0, len(members), BATCH):
            chunk = members[low : low + BATCH]
            args: list[str | bytes] = [b"0"] * (2 * len(chunk))
            args[1::2] = chunk
            pipe.execute_command("ZADD", key(shard), *args)
            queued += len(chunk)
            if queued >= FLUSH_MEMBERS:
                await pipe.execute()
                queued = 0
    await pipe.execute()


def table(rows: list[dict[str, Any]]) -> Table:
    """The result rows as the table docs/benchmarks.md shows."""
    out = Table(
        "ids", "floor s", "floor ids/s", "upload s", "upload ids/s", "parse s", "parse ids/s",
        "upload / floor", title=f"audience upload ({SHARDS} shards, best of {REPEAT})",
    )  # fmt: skip
    for row in rows:
        size = row["size"]
        out.add_row(
            f"{size:,}",
            *_timing(row["floor_s"], size),
            *_timing(row["upload_s"], size),
            *_timing(row["parse_s"], size),
            f"{row['ratio']:.2f}",
        )
    return out


def _timing(seconds: float, size: int) -> tuple[str, str]:
    return f"{seconds:.3f}", f"{size / seconds:,.0f}"


async def delete_shards(redis: aioredis.Redis, *keys: Callable[[int], str]) -> None:
    """Delete shards 0..SHARDS-1 of each of ``keys``, pipelined."""
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        for shard in range(SHARDS):
            pipe.delete(key(shard))
    await pipe.execute()
