"""Scenario ``profiles``: ``journeys profiles load`` against a raw COPY of the same file.

For each size, in the same run and against the same PostgreSQL:

- **floor**: ``COPY ... FROM STDIN (FORMAT csv, HEADER)`` of the file into a plain table with
  the same columns (attributes as text): what the server costs no matter what we do;
- **keyed floor**: the same rows already typed (attributes as one JSON object per row)
  COPYed into a table made ``LIKE users INCLUDING ALL`` (its primary key and defaults): what
  any loader that puts the rows into ``users`` pays at the least, before any checking;
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


def write_typed(directory: Path, size: int, prefix: str) -> Path:
    """The rows of :func:`write_file` as ``users`` holds them: user_id, email, timezone, attrs."""
    path = directory / f"typed-{prefix}-{size}.csv"
    with path.open("w") as handle:
        for n in range(size):
            tier = ("gold", "silver", "bronze")[n % 3]
            vip = "true" if n % 2 else "false"
            attrs = (
                f'{{""tier"": ""{tier}"", ""orders"": {n % 17}, ""vip"": {vip}, '
                f'""last_active_at"": ""2026-11-{1 + n % 28:02d}""}}'
            )
            handle.write(f'{prefix}-{n:07d},u{n}@example.com,Asia/Shanghai,"{attrs}"\n')
    return path


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
        await pool.execute(
            "CREATE TABLE IF NOT EXISTS bench_users_floor (LIKE users INCLUDING ALL)"
        )
        with tempfile.TemporaryDirectory() as tmp:
            for size in sizes:
                floor, keyed, load = float("inf"), float("inf"), float("inf")
                for _ in range(REPEAT):
                    prefix = f"bp{uuid.uuid4().hex[:6]}"
                    path = write_file(Path(tmp), size, prefix)
                    typed = write_typed(Path(tmp), size, prefix)
                    await pool.execute("TRUNCATE bench_profiles_floor")
                    await pool.execute("TRUNCATE bench_users_floor")
                    started = time.perf_counter()
                    async with pool.acquire() as conn:
                        await conn.copy_to_table(
                            "bench_profiles_floor", source=path, format="csv", header=True
                        )
                    floor = min(floor, time.perf_counter() - started)
                    started = time.perf_counter()
                    async with pool.acquire() as conn:
                        await conn.copy_to_table(
                            "bench_users_floor",
                            source=typed,
                            columns=["user_id", "email", "timezone", "attrs"],
                            format="csv",
                        )
                    keyed = min(keyed, time.perf_counter() - started)
                    typed.unlink()
                    started = time.perf_counter()
                    report = await load_profiles(pool, path)
                    load = min(load, time.perf_counter() - started)
                    assert report.new == size
                    path.unlink()
                rows.append(
                    {
                        "size": size,
                        "floor_s": floor,
                        "keyed_floor_s": keyed,
                        "load_s": load,
                        "ratio": load / floor,
                        "ratio_keyed": load / keyed,
                    }
                )
        await pool.execute("DROP TABLE bench_profiles_floor")
        await pool.execute("DROP TABLE bench_users_floor")
    Console(width=120).print(table(rows))
    return save("profiles", rows=rows, repeat=REPEAT)


def table(rows: list[dict[str, Any]]) -> Table:
    out = Table(
        "profiles", "raw COPY (floor)", "typed COPY into users' shape", "profiles load",
        "load / floor", "load / keyed floor",
    )  # fmt: skip
    for row in rows:
        out.add_row(
            f"{row['size']:,}", f"{row['floor_s']:.2f} s", f"{row['keyed_floor_s']:.2f} s",
            f"{row['load_s']:.2f} s", f"{row['ratio']:.2f}x", f"{row['ratio_keyed']:.2f}x",
        )  # fmt: skip
    return out
