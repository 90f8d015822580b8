"""Who a command acts as, and recording what it did in the audit log."""

from __future__ import annotations

import typer

from activities.db import audit_log
from journeys.audit import AuditRecord, actor_name
from journeys.settings import get_settings

from .connect import on_database

BY = typer.Option(
    None,
    "--by",
    metavar="NAME",
    help="Who is acting, for approvals and the audit log (default JOURNEYS_ACTOR, else the "
    "login name).",
)


def acting(by: str | None) -> str:
    """The actor of this command: ``--by``, else ``JOURNEYS_ACTOR``, else the login name."""
    return actor_name(by, configured=get_settings().actor)


def audit(record: AuditRecord) -> None:
    """Append ``record`` to the audit log from a synchronous command (after its action)."""
    on_database(lambda pool: audit_log.record(pool, record))
