"""Immutable, numbered plan versions in PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from pydantic import BaseModel

from activities.db.pool import DbPool
from journeys.errors import NotFound, PlanInvalid, Problem
from journeys.plan.models import Plan
from journeys.plan.rule_sites import plan_tags
from journeys.tags.check import rule_tag_problems

from . import decision_store, queries, tag_store


class VersionInfo(BaseModel):
    """One stored version of a plan."""

    plan_id: str
    version: int
    checksum: str
    published_at: datetime
    source: str | None = None
    note: str | None = None
    created: bool = True  # False when publishing found the same plan already newest


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
) -> VersionInfo:
    """Store ``plan`` as its next version, unless it equals the newest one (then return that).

    A new version's rules are checked against the tag registry first (PlanInvalid names each
    problem). ``restoring`` (a rollback) publishes a version that existed: it may read tags
    disabled since, or, from before the registry, tags it never held."""
    checksum = plan_checksum(plan)
    async with pool.acquire() as conn, conn.transaction():
        # Serialise publishers of one plan; the lock ends with the transaction.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", plan.id)
        latest = await conn.fetchrow(queries.PLAN_LATEST, plan.id)
        if latest is not None and latest["checksum"] == checksum and not force:
            return VersionInfo(
                plan_id=plan.id,
                version=latest["version"],
                checksum=checksum,
                published_at=latest["published_at"],
                created=False,
            )
        problems = [] if restoring else await tag_problems(conn, plan, for_share=True)
        if problems:
            raise PlanInvalid(plan.id, problems)
        body = plan.model_dump(mode="json", by_alias=True)
        row = await conn.fetchrow(
            queries.PLAN_INSERT_VERSION, plan.id, body, checksum, source, note
        )
    assert row is not None  # INSERT ... RETURNING returns its row
    return VersionInfo(
        plan_id=plan.id,
        version=row["version"],
        checksum=checksum,
        published_at=row["published_at"],
        source=source,
        note=note,
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


async def rollback(pool: DbPool, plan_id: str, *, to: int) -> VersionInfo:
    """Publish version ``to`` again as the newest version (history is never rewritten)."""
    plan = await load(pool, plan_id, to)
    return await publish(pool, plan, note=f"rollback to v{to}", force=True, restoring=True)


__all__ = ["VersionInfo", "load", "plan_checksum", "publish", "rollback", "versions"]
