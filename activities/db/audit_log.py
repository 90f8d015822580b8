"""Appending to and reading the audit log (``migrations/017_approvals_audit.sql``)."""

from __future__ import annotations

from typing import Protocol

from activities.db import queries
from activities.db.pool import DbPool
from journeys.audit import AuditEntry, AuditRecord


class Executes(Protocol):
    """A pool or a connection (so an action and its record can share a transaction)."""

    async def execute(self, query: str, *args: object) -> str: ...


async def record(db: Executes, entry: AuditRecord) -> None:
    """Append ``entry``; on a connection in a transaction it lands with the action or not
    at all."""
    await db.execute(
        queries.AUDIT_INSERT,
        entry.actor,
        entry.action,
        entry.plan_id,
        entry.version,
        entry.run_id,
        entry.subject,
        entry.detail,
    )


async def entries(
    pool: DbPool, *, plan_id: str | None = None, run_id: str | None = None, limit: int = 200
) -> list[AuditEntry]:
    """The newest ``limit`` entries, newest first, of one plan or run, or of everything."""
    rows = await pool.fetch(queries.AUDIT_LIST, plan_id, run_id, limit)
    return [AuditEntry(**dict(row)) for row in rows]
