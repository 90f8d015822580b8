"""``journeys audience upload`` / ``show``: saved audiences from files of user ids."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from activities.audience.shard_sets import (
    AudienceInfo,
    audience_info,
    check_audience,
    check_name,
    save_audience,
)
from journeys.audience_file import ParsedAudience, read_audience_file
from journeys.errors import InvalidInput, Problem
from journeys.settings import get_settings
from journeys.sharding import DEFAULT_SHARDS, MAX_SHARDS, is_valid_shard_count

from .connect import database, redis_client
from .console import out, print_json

SHOWN_BAD = 5  # bad lines named in the summary; --json lists up to JSON_BAD
JSON_BAD = 100

audience_app = typer.Typer(
    name="audience",
    help="Saved audiences: upload ids, save a rule, a query or a set, show what is stored.",
    no_args_is_help=True,
)


@audience_app.command()
def upload(
    file: Path = typer.Argument(..., help="CSV (user_id column, else the first) or one id a line."),
    name: str = typer.Option(..., "--name", help="Audience name (replaces an earlier upload)."),
    shards: int = typer.Option(DEFAULT_SHARDS, help=f"Power of two up to {MAX_SHARDS}."),
    max_bad_share: float = typer.Option(
        0.01, min=0.0, max=1.0, help="Refuse the file when more than this share of lines is bad."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Load the user ids of FILE into the shard sets of audience NAME."""
    check_name(name)
    check_shards(shards)
    started = time.perf_counter()
    parsed = read_audience_file(file, max_bad_share=max_bad_share)
    settings = get_settings()

    async def go() -> AudienceInfo:
        async with database(settings) as pool, redis_client(settings) as redis:
            return await save_audience(
                redis, pool, name=name, ids=parsed.ids, shards=shards, source=str(file)
            )

    info = asyncio.run(go())
    elapsed = time.perf_counter() - started
    if as_json:
        print_json(_upload_json(info, parsed, elapsed))
        return
    out.print(f"[green]uploaded[/] audience [bold]{info.name}[/] from {escape(str(file))}")
    out.print(f"  total ids        {info.total:,} in {info.shards} shards")
    header = " (header skipped)" if parsed.header else ""
    out.print(f"  lines read       {parsed.lines:,}{header}")
    out.print(f"  duplicates       {parsed.duplicates:,} dropped")
    out.print(f"  bad lines        {_bad_summary(parsed)}")
    out.print(f"  elapsed          {elapsed:.2f} s")
    out.print(shard_table(info.per_shard))


@audience_app.command()
def show(
    name: str = typer.Argument(..., help="Audience name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a saved audience: counts per shard, source, and shards lost from Redis."""
    settings = get_settings()

    async def go() -> tuple[AudienceInfo, list[int]]:
        async with database(settings) as pool, redis_client(settings) as redis:
            info = await audience_info(pool, name)
            return info, await check_audience(redis, info)

    info, damaged = asyncio.run(go())
    if as_json:
        print_json(info.model_dump(mode="json") | {"damaged_shards": damaged})
        return
    updated = info.updated_at.strftime("%Y-%m-%d %H:%M:%S %Z") if info.updated_at else "?"
    out.print(f"audience [bold]{info.name}[/]: {info.total:,} ids in {info.shards} shards")
    out.print(f"  source           {escape(info.source or '-')}")
    out.print(f"  updated          {updated}")
    if damaged:
        listed = ", ".join(str(k) for k in damaged)
        hint = "a run rebuilds it, or `journeys audience rebuild`"
        out.print(f"  [red]damaged[/]          shards {listed} lost from Redis: {hint}")
    out.print(shard_table(info.per_shard))


def check_shards(shards: int) -> int:
    """``--shards`` if it is a power of two the engine takes, else InvalidInput."""
    if not is_valid_shard_count(shards):
        reason = f"{shards} is not a power of two from 1 to {MAX_SHARDS}"
        raise InvalidInput("--shards", [Problem("", reason)])
    return shards


def shard_table(per_shard: list[int]) -> Table:
    """Per-shard counts as a grid: one row per 8 (or 16) shards."""
    width = min(len(per_shard), 8 if len(per_shard) <= 64 else 16)
    table = Table("shards", *(f"+{i}" for i in range(width)), title="users per shard")
    for low in range(0, len(per_shard), width):
        row = per_shard[low : low + width]
        label = f"{low}-{low + len(row) - 1}" if len(row) > 1 else str(low)
        table.add_row(label, *(f"{n:,}" for n in row))
    return table


def _bad_summary(parsed: ParsedAudience) -> str:
    if not parsed.bad:
        return "0"
    shown = "; ".join(f"line {b.line}: {b.reason}" for b in parsed.bad[:SHOWN_BAD])
    more = f"; and {len(parsed.bad) - SHOWN_BAD:,} more" if len(parsed.bad) > SHOWN_BAD else ""
    return f"{len(parsed.bad):,} skipped ({shown}{more})"


def _upload_json(info: AudienceInfo, parsed: ParsedAudience, elapsed: float) -> dict[str, Any]:
    return info.model_dump(mode="json") | {
        "lines": parsed.lines,
        "duplicates": parsed.duplicates,
        "header": parsed.header,
        "bad_count": len(parsed.bad),
        "bad": [
            {"line": b.line, "text": b.text, "reason": b.reason} for b in parsed.bad[:JSON_BAD]
        ],
        "elapsed_seconds": round(elapsed, 3),
    }


def register(app: typer.Typer) -> None:
    """Add the ``audience`` command group to ``app``."""
    app.add_typer(audience_app)
