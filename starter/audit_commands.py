"""``journeys audit``: who did what and when, newest first."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from activities.db import audit_log
from journeys.audit import AuditEntry

from .connect import on_database
from .console import out, print_json


def audit(
    plan: str | None = typer.Option(None, "--plan", help="Only what was done to this plan."),
    run: str | None = typer.Option(None, "--run", help="Only what was done to this run."),
    limit: int = typer.Option(200, min=1, max=100_000, help="At most this many entries."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The audit log: publish, approve, launch, pause, resume, cancel, rate changes,
    suppression and key changes, newest first."""
    found: list[AuditEntry] = on_database(
        lambda pool: audit_log.entries(pool, plan_id=plan, run_id=run, limit=limit)
    )
    if as_json:
        print_json([entry.model_dump(mode="json") for entry in found])
        return
    table = Table("at (UTC)", "actor", "action", "plan", "run / subject", "detail")
    for e in found:
        plan_cell = f"{e.plan_id} v{e.version}" if e.version is not None else e.plan_id or ""
        details = {k: v for k, v in e.detail.items() if v is not None and k != "user_ids"}
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            escape(e.actor),
            e.action,
            escape(plan_cell),
            escape(e.run_id or e.subject or ""),
            escape(json.dumps(details, separators=(", ", "=")) if details else ""),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add ``journeys audit`` to ``app``."""
    app.command()(audit)
