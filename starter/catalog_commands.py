"""``journeys catalog``: the items and orders that item and order tags read."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import typer

from activities.catalog import load_catalog
from activities.db import queries
from journeys.catalog_file import MAX_BAD_LINES, read_catalog
from journeys.errors import InvalidInput, NotFound, Problem
from journeys.settings import get_settings

from .connect import database
from .console import out, print_json

catalog_app = typer.Typer(
    name="catalog",
    help="Items (by sku) and orders (by id) with their attributes, for item and order tags.",
    no_args_is_help=True,
)
Kind = Literal["item", "order"]


class CatalogRefused(InvalidInput):
    """A catalog file with bad lines: nothing of it was stored."""


@catalog_app.command()
def load(
    kind: Kind = typer.Argument(..., help="item or order."),
    file: Path = typer.Argument(..., help='JSON Lines: {"id": ..., "attrs": {...}} a line.'),
) -> None:
    """Store the file's items or orders (attributes merged into what is stored), all of them
    or, when a line is bad, none."""
    rows, bad = read_catalog(file)
    if bad:
        problems = [Problem(f"line {n}", why) for n, why in bad[:MAX_BAD_LINES]]
        if len(bad) > MAX_BAD_LINES:
            problems.append(Problem("", f"{len(bad) - MAX_BAD_LINES} more bad lines"))
        raise CatalogRefused(str(file), problems)

    async def go() -> int:
        async with database(get_settings()) as pool:
            return await load_catalog(pool, kind, rows)

    out.print(f"{asyncio.run(go()):,} {kind}s stored from {file}")


@catalog_app.command()
def show(kind: Kind = typer.Argument(...), key: str = typer.Argument(...)) -> None:
    """One item's or order's attributes, as JSON."""

    async def go() -> dict[str, object]:
        async with database(get_settings()) as pool:
            rows = await pool.fetch(queries.CATALOG_ATTRS, kind, [key])
        if not rows:
            raise NotFound(f"no {kind} {key!r} in the catalog")
        attrs: dict[str, object] = rows[0]["attrs"]
        return attrs

    print_json(asyncio.run(go()))


def register(app: typer.Typer) -> None:
    """Add ``journeys catalog ...``."""
    app.add_typer(catalog_app)
