"""``journeys suppress``: suppression lists and the allow list of test users."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from activities.controls.suppression import (
    EVERY_CHANNEL,
    ListName,
    SuppressionStore,
    is_channel_name,
)
from journeys.audience_file import check_user_id, read_audience_file
from journeys.channels_config import load_channels
from journeys.errors import InvalidInput, Problem
from journeys.settings import get_settings

from .acting import BY, acting
from .connect import database, redis_client
from .console import out, print_json

suppress_app = typer.Typer(
    name="suppress",
    help="Suppression lists (never send) and the allow list of test users (caps and quiet "
    "hours never stop them).",
    no_args_is_help=True,
)
_JSON = typer.Option(False, "--json", help="Print JSON.")
_CHANNEL = typer.Option(EVERY_CHANNEL, "--channel", help="One channel, or * for every channel.")
_ALLOW = typer.Option(False, "--allow", help="The allow list of test users instead.")
T = TypeVar("T")


def _run(work: Callable[[SuppressionStore], Awaitable[T]]) -> T:
    async def go() -> T:
        settings = get_settings()
        async with database(settings) as pool, redis_client(settings) as redis:
            return await work(SuppressionStore(pool=pool, redis=redis))

    return asyncio.run(go())


def _list_name(allow: bool) -> ListName:
    return "allow" if allow else "suppress"


def _channel(channel: str) -> str:
    """``*``, or a channel of the channels file (a mark on no channel would do nothing)."""
    if channel == EVERY_CHANNEL:
        return channel
    if not is_channel_name(channel):
        raise InvalidInput("suppress", [Problem("--channel", f"not a channel name: {channel!r}")])
    path = get_settings().channels_file
    if path.exists() and channel not in load_channels(path).channels:
        raise InvalidInput("suppress", [Problem("--channel", f"no channel {channel!r} in {path}")])
    return channel


def _checked(users: list[str]) -> list[str]:
    checked = [check_user_id(user) for user in users]
    problems = [
        Problem(f"users.{i}", reason) for i, (_, reason) in enumerate(checked) if reason is not None
    ]
    if problems:
        raise InvalidInput("suppress", problems)
    return [user for user, _ in checked]


@suppress_app.command()
def add(
    users: list[str] = typer.Argument(..., help="User ids."),
    channel: str = _CHANNEL,
    allow: bool = _ALLOW,
    reason: str | None = typer.Option(None, help="Why (kept with the mark)."),
    by: str | None = BY,
    as_json: bool = _JSON,
) -> None:
    """Suppress USERS (on one channel, or all), or allow them as test users."""
    ids, channel, actor = _checked(users), _channel(channel), acting(by)
    added = _run(
        lambda s: s.add(
            ids, channel=channel, list_name=_list_name(allow), reason=reason, actor=actor
        )
    )
    _done("added", added, len(ids), as_json=as_json)


@suppress_app.command()
def remove(
    users: list[str] = typer.Argument(..., help="User ids."),
    channel: str = _CHANNEL,
    allow: bool = _ALLOW,
    by: str | None = BY,
    as_json: bool = _JSON,
) -> None:
    """Lift the mark of USERS (the same channel it was added on)."""
    ids, channel, actor = _checked(users), _channel(channel), acting(by)
    removed = _run(
        lambda s: s.remove(ids, channel=channel, list_name=_list_name(allow), actor=actor)
    )
    _done("removed", removed, len(ids), as_json=as_json)


@suppress_app.command("import")
def import_file(
    file: Path = typer.Argument(..., help="One user id per line (or CSV with a user_id column)."),
    channel: str = _CHANNEL,
    allow: bool = _ALLOW,
    reason: str | None = typer.Option(None, help="Why (kept with each mark)."),
    by: str | None = BY,
    as_json: bool = _JSON,
) -> None:
    """Suppress (or allow) every user of FILE; a file with any bad line is refused whole."""
    parsed = read_audience_file(file, max_bad_share=0.0)
    channel, actor = _channel(channel), acting(by)
    added = _run(
        lambda s: s.add(
            parsed.ids,
            channel=channel,
            list_name=_list_name(allow),
            reason=reason,
            source=f"import:{file.name}",
            actor=actor,
        )
    )
    _done("added", added, len(parsed.ids), as_json=as_json)


@suppress_app.command("list")
def list_marks(
    user: str | None = typer.Option(None, help="Only this user's marks."),
    allow: bool = typer.Option(False, "--allow", help="Only the allow list."),
    limit: int = typer.Option(1000, min=1, max=100_000, help="At most this many rows."),
    as_json: bool = _JSON,
) -> None:
    """Marks by user: the list, the channel, why and where from."""
    entries = _run(
        lambda s: s.entries(user=user, list_name="allow" if allow else None, limit=limit)
    )
    if as_json:
        print_json(
            [
                {
                    "user_id": e.user_id,
                    "list": e.list,
                    "channel": e.channel,
                    "reason": e.reason,
                    "source": e.source,
                    "created_at": e.created_at.isoformat(),
                }
                for e in entries
            ]
        )
        return
    table = Table("user", "list", "channel", "reason", "source", "since")
    for e in entries:
        table.add_row(
            escape(e.user_id),
            e.list,
            e.channel,
            escape(e.reason or ""),
            escape(e.source),
            f"{e.created_at:%Y-%m-%d %H:%M}",
        )
    out.print(table)


@suppress_app.command()
def sync(as_json: bool = _JSON) -> None:
    """Rebuild the copy in Redis that the delivery gate reads from PostgreSQL's record."""
    written = _run(lambda s: s.sync())
    if as_json:
        print_json({"marks": written})
        return
    out.print(f"{written} marks in Redis match PostgreSQL")


def _done(verb: str, changed: int, given: int, *, as_json: bool) -> None:
    if as_json:
        print_json({verb: changed, "users": given})
        return
    out.print(f"{verb} {changed} of {given} users ({given - changed} unchanged)")


def register(app: typer.Typer) -> None:
    """Add the ``suppress`` command group to ``app``."""
    app.add_typer(suppress_app)
