"""Immutable, numbered plan versions in PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from pydantic import BaseModel

from activities.db.pool import DbPool
from journeys.audit import AuditRecord
from journeys.errors import AlreadyApproved, NotApproved, NotFound, PlanInvalid, Problem
from journeys.plan.models import Plan
from journeys.plan.rule_sites import plan_tags
from journeys.tags.check import rule_tag_problems

from . import audit_log, decision_store, queries, tag_store


class VersionInfo(BaseModel):
    """One stored version of a plan."""

    plan_id: str
    version: int
    checksum: str
    published_at: datetime
    source: str | None = None
    note: str | None = None
    published_by: str | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    created: bool = True  # False when publishing found the same plan already newest

    @property
    def approved(self) -> bool:
        return self.approved_at is not None


def plan_checksum(plan: Plan) -> str:
    """A stable digest of the plan's canonical JSON: equal plans, equal checksums."""
    body = plan.model_dump(mode="json", by_alias=True)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def publish(
    pool: DbPool,
    plan: Plan,
    *,
    source: str | None = None,
    note: str | None = None,
    force: bool = False,
    restoring: bool = False,
    by: str | None = None,
) -> VersionInfo:
    """Store ``plan`` as its next version, unless it equals the newest one (then return that).

    A new version's rules are checked against the tag registry first (PlanInvalid names each
    problem). ``restoring`` (a rollback) publishes a version that existed: it may read tags
    disabled since, or, from before the registry, tags it never held. A new version is
    recorded in the audit log as published ``by`` (in the same transaction)."""
    checksum = plan_checksum(plan)
    async with pool.acquire() as conn, conn.transaction():
        # Serialise publishers of one plan; the lock ends with the transaction.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", plan.id)
        latest = await conn.fetchrow(queries.PLAN_LATEST, plan.id)
        if latest is not None and latest["checksum"] == checksum and not force:
            return VersionInfo(created=False, plan_id=plan.id, **dict(latest))
        problems = [] if restoring else await tag_problems(conn, plan, for_share=True)
        if problems:
            raise PlanInvalid(plan.id, problems)
        body = plan.model_dump(mode="json", by_alias=True)
        row = await conn.fetchrow(
            queries.PLAN_INSERT_VERSION, plan.id, body, checksum, source, note, by
        )
        assert row is not None  # INSERT ... RETURNING returns its row
        detail = {"source": source, "note": note, "checksum": checksum[:12]}
        await audit_log.record(
            conn,
            AuditRecord(actor=by or "unknown", action="publish", plan_id=plan.id,
                        version=row["version"], detail=detail),
        )  # fmt: skip
    return VersionInfo(
        plan_id=plan.id,
        version=row["version"],
        checksum=checksum,
        published_at=row["published_at"],
        source=source,
        note=note,
        published_by=by,
    )


async def tag_problems(
    conn: tag_store.Connection | DbPool, plan: Plan, *, for_share: bool = False
) -> list[Problem]:
    """What the tag registry refuses in a new version of ``plan`` (none when its rules read no
    tag), and the decision store about its ``decide`` steps; ``for_share`` holds the tags'
    rows against a state change until the transaction ends, as publishing does."""
    problems = await decision_store.plan_problems(conn, plan)
    names = plan_tags(plan)
    if not names:
        return problems
    found = await tag_store.registry(conn, names, for_share=for_share)
    return rule_tag_problems(plan, found, allow_disabled=False) + problems


async def versions(pool: DbPool, plan_id: str) -> list[VersionInfo]:
    """Every version of ``plan_id``, oldest first; NotFound if there is none."""
    rows = await pool.fetch(queries.PLAN_VERSIONS, plan_id)
    if not rows:
        raise NotFound(f"plan {plan_id!r} has no published version")
    return [VersionInfo(plan_id=plan_id, created=False, **dict(row)) for row in rows]


async def load(pool: DbPool, plan_id: str, version: int) -> Plan:
    """The plan exactly as version ``version`` stored it."""
    row = await pool.fetchrow(queries.PLAN_VERSION_BODY, plan_id, version)
    if row is None:
        raise NotFound(f"plan {plan_id!r} has no version {version}")
    return Plan.model_validate(row["body"])


async def rollback(pool: DbPool, plan_id: str, *, to: int, by: str | None = None) -> VersionInfo:
    """Publish version ``to`` again as the newest version (history is never rewritten); under
    approval it is pending like any new version."""
    plan = await load(pool, plan_id, to)
    return await publish(pool, plan, note=f"rollback to v{to}", force=True, restoring=True, by=by)


async def version_info(pool: DbPool, plan_id: str, version: int) -> VersionInfo:
    """One version's row; NotFound if it does not exist."""
    for info in await versions(pool, plan_id):
        if info.version == version:
            return info
    raise NotFound(f"plan {plan_id!r} has no version {version}")


async def approve(pool: DbPool, plan_id: str, version: int, *, by: str) -> VersionInfo:
    """Approve ``version`` as ``by``, who must not be its publisher; recorded in the audit
    log with the approval. Approving an approved version changes nothing and says who did."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.PLAN_VERSION_APPROVAL, plan_id, version)
        if row is None:
            raise NotFound(f"plan {plan_id!r} has no version {version}")
        if row["approved_at"] is not None:
            raise AlreadyApproved(
                f"{plan_id} v{version} was approved already, by {row['approved_by']} at "
                f"{row['approved_at']:%Y-%m-%d %H:%M:%S %Z}"
            )
        if row["published_by"] is not None and row["published_by"] == by:
            raise NotApproved(
                f"{plan_id} v{version} was published by {by}: someone else must approve it"
            )
        approved = await conn.fetchval(queries.PLAN_APPROVE, plan_id, version, by)
        if approved is None:  # another approver's transaction won the row
            raise AlreadyApproved(f"{plan_id} v{version} was approved already, by someone else")
        await audit_log.record(
            conn, AuditRecord(actor=by, action="approve", plan_id=plan_id, version=version)
        )
    return await version_info(pool, plan_id, version)


async def require_approval(pool: DbPool, plan_id: str, version: int) -> None:
    """Raise :class:`NotApproved` unless ``version`` was approved (under ``approval:
    required`` every launch asks)."""
    info = await version_info(pool, plan_id, version)
    if not info.approved:
        by = f" (published by {info.published_by})" if info.published_by else ""
        raise NotApproved(
            f"{plan_id} v{version} awaits approval{by}: the policy requires it; someone "
            f"else runs `journeys approve {plan_id} --version {version}`"
        )


__all__ = [
    "VersionInfo",
    "approve",
    "load",
    "plan_checksum",
    "publish",
    "require_approval",
    "rollback",
    "version_info",
    "versions",
]
