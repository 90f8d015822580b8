"""``journeys profiles load`` / ``show``: user profiles from CSV or JSON Lines files."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import typer
from rich.markup import escape

from activities.db import queries
from activities.profiles import ProfilesLoaded, load_profiles
from journeys.errors import NotFound
from journeys.settings import get_settings

from .connect import database
from .console import out, print_json

SHOWN_BAD = 5

profiles_app = typer.Typer(
    name="profiles",
    help="User profiles: contact points and the attributes rules and templates read.",
    no_args_is_help=True,
)


@profiles_app.command()
def load(
    file: Path = typer.Argument(
        ..., help="CSV with a user_id column, or .jsonl (one object a line)."
    ),
    max_bad_share: float = typer.Option(
        0.01, min=0.0, max=1.0, help="Refuse the file when more than this share of rows is bad."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Upsert the profiles of FILE: empty cells keep what is stored, attributes merge in."""
    started = time.perf_counter()

    async def go() -> ProfilesLoaded:
        async with database(get_settings()) as pool:
            return await load_profiles(pool, file, max_bad_share=max_bad_share)

    report = asyncio.run(go())
    elapsed = time.perf_counter() - started
    bad = [{"line": b.line, "reason": b.reason} for b in report.bad]
    if as_json:
        print_json(
            {
                "file": str(file),
                "lines": report.lines,
                "new": report.new,
                "updated": report.updated,
                "bad_count": report.bad_count,
                "bad": bad,
                "elapsed_seconds": round(elapsed, 3),
            }
        )
        return
    out.print(f"[green]loaded[/] profiles from {escape(str(file))}")
    out.print(f"  rows read        {report.lines:,}")
    out.print(f"  new users        {report.new:,}")
    out.print(f"  updated users    {report.updated:,}")
    shown = "; ".join(f"line {b.line}: {escape(b.reason)}" for b in report.bad[:SHOWN_BAD])
    more = f"; and {report.bad_count - SHOWN_BAD:,} more" if report.bad_count > SHOWN_BAD else ""
    out.print(f"  bad rows         {report.bad_count:,}" + (f" ({shown}{more})" if shown else ""))
    out.print(f"  elapsed          {elapsed:.2f} s")


@profiles_app.command()
def show(
    user: str = typer.Argument(..., help="The user id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one user's profile: contact points and attributes."""

    async def go() -> dict[str, object]:
        async with database(get_settings()) as pool:
            row = await pool.fetchrow(queries.PROFILE_BY_ID, user)
        if row is None:
            raise NotFound(f"user {user!r} has no profile (load one with `journeys profiles load`)")
        return dict(row)

    profile = asyncio.run(go())
    if as_json:
        print_json(profile)
        return
    out.print(f"user [bold]{escape(user)}[/]")
    for name in ("email", "phone", "timezone", "created_at", "updated_at"):
        out.print(f"  {name:<16} {escape(str(profile[name] or '-'))}")
    attrs = profile["attrs"]
    for name, value in sorted(attrs.items()) if isinstance(attrs, dict) else ():
        out.print(f"  {escape(name):<16} {escape(repr(value))}")


def register(app: typer.Typer) -> None:
    """Add the ``profiles`` command group to ``app``."""
    app.add_typer(profiles_app)
