"""Scenes, instance drafts and immutable numbered instance versions in PostgreSQL.

An instance has one draft at a time (saving replaces it) and versions numbered from 1; the
newest version is live. Publishing checks the draft against its scene and the tag registry
again under the instance's lock (a tag may have been disabled since it was saved) and holds
the tags it reads against a state change until the version is stored. A rollback publishes an
old body again as the newest version, unchecked: it worked when it was live, and a strategy
whose tag was disabled since keeps working.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from pydantic import BaseModel

from activities.db.pool import DbPool
from journeys.decisions.check import (
    decide_step_problems,
    instance_problems,
    instance_tags,
    scene_problems,
)
from journeys.decisions.model import Instance, Scene
from journeys.errors import DecisionRefused, NotFound, Problem
from journeys.plan.models import Plan
from journeys.plan.steps import DecideStep

from . import queries, tag_store


class InstanceVersion(BaseModel):
    """One published version of an instance."""

    instance_id: str
    version: int
    checksum: str
    published_at: datetime
    note: str | None = None
    created: bool = True
    """False when publishing found the same body already live."""


class LiveInstance(BaseModel):
    """An instance's live version, with its scene as it is now."""

    instance: Instance
    scene: Scene
    version: int


def checksum_of(instance: Instance) -> str:
    """A digest of the instance's canonical JSON: equal bodies, equal checksums."""
    body = json.dumps(instance.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


async def define_scene(pool: DbPool, scene: Scene) -> None:
    """Store ``scene`` (replacing it), unless its schema is no JSON Schema or an instance's
    live version or draft would no longer pass under it."""
    problems = scene_problems(scene)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('scene:' || $1))", scene.scene)
        if not problems:
            for row in await conn.fetch(queries.DECISION_SCENE_INSTANCES, scene.scene):
                instance = Instance.model_validate(row["body"])
                found = await tag_store.registry(conn, instance_tags(instance))
                problems += [
                    Problem(f"instance {row['instance_id']}: {p.path}", p.reason)
                    for p in instance_problems(instance, scene, found, allow_disabled=True)
                ]
        if problems:
            raise DecisionRefused(f"scene {scene.scene}", problems)
        await conn.execute(
            queries.DECISION_SCENE_UPSERT, scene.scene, scene.model_dump(mode="json")
        )


async def scene(pool: DbPool, scene_id: str) -> Scene:
    """The scene as stored; NotFound when it was never defined."""
    body = await pool.fetchval(queries.DECISION_SCENE, scene_id)
    if body is None:
        raise NotFound(f"no scene {scene_id!r} (define it: journeys decisions scene FILE)")
    return Scene.model_validate(body)


async def save_draft(pool: DbPool, instance: Instance) -> datetime:
    """Check ``instance`` and store it as its draft (replacing the one before)."""
    the_scene = await scene(pool, instance.scene)
    found = await tag_store.registry(pool, instance_tags(instance))
    problems = instance_problems(instance, the_scene, found)
    if problems:
        raise DecisionRefused(f"instance {instance.instance}", problems)
    saved: datetime = await pool.fetchval(
        queries.DECISION_DRAFT_SAVE,
        instance.instance,
        instance.scene,
        instance.model_dump(mode="json"),
    )
    return saved


async def draft(pool: DbPool, instance_id: str) -> Instance | None:
    """The instance's draft, if it has one."""
    row = await pool.fetchrow(queries.DECISION_DRAFT, instance_id)
    return None if row is None else Instance.model_validate(row["body"])


async def publish(pool: DbPool, instance_id: str, *, note: str | None = None) -> InstanceVersion:
    """Publish the instance's draft as its next version (the draft is then gone)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('instance:' || $1))", instance_id)
        row = await conn.fetchrow(queries.DECISION_DRAFT, instance_id)
        if row is None:
            raise NotFound(
                f"instance {instance_id!r} has no draft (save one: journeys decisions draft FILE)"
            )
        instance = Instance.model_validate(row["body"])
        body = await conn.fetchval(queries.DECISION_SCENE, instance.scene)
        found = await tag_store.registry(conn, instance_tags(instance), for_share=True)
        problems = instance_problems(instance, Scene.model_validate(body), found)
        if problems:
            raise DecisionRefused(f"instance {instance_id}", problems)
        await conn.execute(queries.DECISION_DRAFT_DELETE, instance_id)
        latest = await conn.fetchrow(queries.DECISION_LATEST, instance_id)
        if latest is not None and latest["checksum"] == checksum_of(instance):
            return InstanceVersion(
                instance_id=instance_id,
                version=latest["version"],
                checksum=latest["checksum"],
                published_at=latest["published_at"],
                created=False,
            )
        return await _insert(conn, instance, note=note)


async def rollback(pool: DbPool, instance_id: str, *, to: int) -> InstanceVersion:
    """Publish version ``to`` again as the newest (history is never rewritten); the draft,
    if any, stays."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('instance:' || $1))", instance_id)
        body = await conn.fetchval(queries.DECISION_VERSION_BODY, instance_id, to)
        if body is None:
            raise NotFound(f"instance {instance_id!r} has no version {to}")
        return await _insert(conn, Instance.model_validate(body), note=f"rollback to v{to}")


async def _insert(
    conn: tag_store.Connection, instance: Instance, *, note: str | None
) -> InstanceVersion:
    checksum = checksum_of(instance)
    body = instance.model_dump(mode="json")
    row = await conn.fetchrow(
        queries.DECISION_INSERT_VERSION, instance.instance, instance.scene, body, checksum, note
    )
    assert row is not None  # INSERT ... RETURNING returns its row
    return InstanceVersion(
        instance_id=instance.instance,
        version=row["version"],
        checksum=checksum,
        published_at=row["published_at"],
        note=note,
    )


async def versions(pool: DbPool, instance_id: str) -> list[InstanceVersion]:
    """Every version of the instance, oldest first; NotFound when none was published."""
    rows = await pool.fetch(queries.DECISION_VERSIONS, instance_id)
    if not rows:
        raise NotFound(f"instance {instance_id!r} has no published version")
    return [InstanceVersion(instance_id=instance_id, created=False, **dict(r)) for r in rows]


async def plan_problems(conn: tag_store.Connection | DbPool, plan: Plan) -> list[Problem]:
    """What the decision store refuses in ``plan``: each ``decide`` step's instance must be
    published, of a scene a journey can answer, with the fields it promises."""
    problems: list[Problem] = []
    for step_id, step in plan.steps.items():
        if not isinstance(step, DecideStep):
            continue
        path = f"steps.{step_id}.decide"
        row = await conn.fetchrow(queries.DECISION_LATEST, step.instance)
        if row is None:
            reason = f"no published instance {step.instance!r} (journeys decisions publish)"
            problems.append(Problem(f"{path}.instance", reason))
            continue
        instance = Instance.model_validate(row["body"])
        the_scene = Scene.model_validate(
            await conn.fetchval(queries.DECISION_SCENE, instance.scene)
        )
        problems += decide_step_problems(path, step, the_scene)
    return problems


async def live(pool: DbPool, instance_id: str) -> LiveInstance:
    """The instance's newest version and its scene; NotFound when none was published."""
    row = await pool.fetchrow(queries.DECISION_LATEST, instance_id)
    if row is None:
        raise NotFound(f"no published instance {instance_id[:80]!r}")
    instance = Instance.model_validate(row["body"])
    return LiveInstance(
        instance=instance, scene=await scene(pool, instance.scene), version=row["version"]
    )
