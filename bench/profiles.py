"""Scenario ``profiles``: ``journeys profiles load`` against a raw COPY of the same file.

For each size, in the same run and against the same PostgreSQL:

- **floor**: ``COPY ... FROM STDIN (FORMAT csv, HEADER)`` of the file into a plain table with
  the same columns (attributes as text): what the server costs no matter what we do;
- **load**: :func:`activities.profiles.load_profiles`, the whole load minus the CLI (parse,
  type and check every row, COPY into the staging table, one upsert into ``users``).

Interleaved ``REPEAT`` times, fastest of each kept. Each load upserts fresh ids, so every
round inserts rather than updates (the harder case for the upsert).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from activities.profiles import load_profiles
from journeys.settings import Settings
from starter.connect import database

from .results import save

REPEAT = 2
HEADER = "user_id,email,timezone,tier,orders,vip,last_active_at\n"


def write_file(directory: Path, size: int, prefix: str) -> Path:
    path = directory / f"profiles-{prefix}-{size}.csv"
    with path.open("w") as handle:
        handle.write(HEADER)
        for n in range(size):
            tier = ("gold", "silver", "bronze")[n % 3]
            handle.write(
                f"{prefix}-{n:07d},u{n}@example.com,Asia/Shanghai,{tier},{n % 17},"
                f"{'true' if n % 2 else 'false'},2026-11-{1 + n % 28:02d}\n"
            )
    return path


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """Measure every size, print the table, write ``bench/results/profiles-<date>.json``."""
    rows = []
    async with database(settings) as pool:
        await pool.execute(
            "CREATE TABLE IF NOT EXISTS bench_profiles_floor (user_id text, email text,"
            " timezone text, tier text, orders text, vip text, last_active_at text)"
        )
        with tempfile.TemporaryDirectory() as tmp:
            for size in sizes:
                floor, load = float("inf"), float("inf")
                for _ in range(REPEAT):
                    path = write_file(Path(tmp), size, f"bp{uuid.uuid4().hex[:6]}")
                    await pool.execute("TRUNCATE bench_profiles_floor")
                    started = time.perf_counter()
                    async with pool.acquire() as conn:
                        await conn.copy_to_table(
                            "bench_profiles_floor", source=path, format="csv", header=True
                        )
                    floor = min(floor, time.perf_counter() - started)
                    started = time.perf_counter()
                    report = await load_profiles(pool, path)
                    load = min(load, time.perf_counter() - started)
                    assert report.new == size
                    path.unlink()
                rows.append({"size": size, "floor_s": floor, "load_s": load, "ratio": load / floor})
        await pool.execute("DROP TABLE bench_profiles_floor")
    Console(width=120).print(table(rows))
    return save("profiles", rows=rows, repeat=REPEAT)


def table(rows: list[dict[str, Any]]) -> Table:
    out = Table("profiles", "raw COPY (floor)", "profiles load", "load / floor")
    for row in rows:
        out.add_row(
            f"{row['size']:,}", f"{row['floor_s']:.2f} s", f"{row['load_s']:.2f} s",
            f"{row['ratio']:.2f}x",
        )  # fmt: skip
    return out
