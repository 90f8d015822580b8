"""``journeys keys``: API keys for the HTTP API (hashed at rest, scoped, rate-limited)."""

from __future__ import annotations

import typer
from rich.table import Table

from activities.api_keys import ApiKeyStore, ListedKey
from journeys.api_keys import SCOPES
from journeys.durations import parse_rate

from .acting import BY, acting
from .connect import on_database
from .console import out, print_json

keys_app = typer.Typer(
    name="keys",
    help="API keys: once one exists, the HTTP API needs a key with the route's scope.",
    no_args_is_help=True,
)


@keys_app.command()
def create(
    name: str = typer.Argument(..., help="Who or what uses the key."),
    scopes: list[str] = typer.Option(
        ..., "--scope", help=f"One of {', '.join(SCOPES)}; repeat for more."
    ),
    rate: str | None = typer.Option(None, "--rate", help="Its own limit, e.g. 100/s."),
    by: str | None = BY,
) -> None:
    """Make a key and print it: this is the only time it is shown (only its digest is kept)."""
    per_second = None if rate is None else parse_rate(rate).per_second
    actor = acting(by)
    key = on_database(
        lambda pool: ApiKeyStore(pool).create(name, scopes=scopes, rate=per_second, by=actor)
    )
    out.print(key, soft_wrap=True)
    out.print("keep it now: it is not stored, and cannot be shown again", style="dim")


@keys_app.command("list")
def list_keys(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every key, revoked ones too (ids and scopes, never the keys)."""
    found: list[ListedKey] = on_database(lambda pool: ApiKeyStore(pool).listed())
    if as_json:
        print_json([
            {"key_id": k.key_id, "name": k.name, "scopes": list(k.scopes), "rate": k.rate,
             "created_at": k.created_at.isoformat(),
             "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None}
            for k in found
        ])  # fmt: skip
        return
    table = Table("key", "name", "scopes", "rate", "created", "revoked")
    for k in found:
        table.add_row(k.key_id, k.name, ", ".join(k.scopes), "-" if k.rate is None else
                      f"{k.rate:g}/s", f"{k.created_at:%Y-%m-%d %H:%M}",
                      f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")  # fmt: skip
    out.print(table)


@keys_app.command()
def revoke(
    key_id: str = typer.Argument(..., help="The key's id (jk_...)."), by: str | None = BY
) -> None:
    """Stop a key working (running servers notice within two seconds)."""
    actor = acting(by)
    on_database(lambda pool: ApiKeyStore(pool).revoke(key_id, by=actor))
    out.print(f"key {key_id} revoked")


def register(app: typer.Typer) -> None:
    """Add ``journeys keys ...``."""
    app.add_typer(keys_app)
