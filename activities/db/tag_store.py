"""The tag registry in PostgreSQL: drafts, published versions, disabled tags, usage.

A tag is defined as a draft. ``publish`` needs the draft to have been tried with
``journeys tags test`` first (seed 004: a tag is tested before anyone may use it), and makes
it the live definition, numbered like plan versions. Once published a tag keeps its type and
its enum values (new values may be added): rules already written against it must keep their
meaning. A tag is never deleted; ``disable`` keeps it working for the plan versions that
already use it and refuses it to new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import ValidationError

from activities.db import queries
from activities.db.pool import DbPool
from journeys.errors import InvalidInput, NotFound, Problem
from journeys.plan.models import Plan
from journeys.plan.rule_sites import plan_tags
from journeys.tags.check import RegisteredTag, TagState
from journeys.tags.model import TagDefinition, TagsFile, definition_of

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TagRecord:
    """A registry row: the tag, its timestamps, and whether its draft was tested."""

    tag: RegisteredTag
    draft_tested_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Defined:
    """What ``define`` did with one tag: ``created``, ``drafted`` or ``unchanged``."""

    name: str
    outcome: str


class TagRefused(InvalidInput):
    """A registry change that would break the rules or the lifecycle."""


def _record(row: asyncpg.Record) -> TagRecord:
    live = None if row["live"] is None else definition_of(row["live"])
    draft = None if row["draft"] is None else definition_of(row["draft"])
    tag = RegisteredTag(row["name"], row["state"], live, row["live_version"], draft)
    return TagRecord(tag, row["draft_tested_at"], row["created_at"], row["updated_at"])


async def registry(
    conn: Connection | DbPool, names: Iterable[str], *, for_share: bool = False
) -> dict[str, RegisteredTag]:
    """The registry's entries for ``names`` (absent names are not in the answer);
    ``for_share`` locks them against a state change until the caller's transaction ends."""
    query = queries.TAGS_BY_NAMES_FOR_SHARE if for_share else queries.TAGS_BY_NAMES
    rows = await conn.fetch(query, sorted(set(names)))
    return {row["name"]: _record(row).tag for row in rows}


async def live_definitions(pool: DbPool, names: Iterable[str]) -> dict[str, TagDefinition]:
    """The live definition of each published or disabled tag among ``names``: what runs use."""
    found = await registry(pool, names)
    return {name: tag.live for name, tag in found.items() if tag.live is not None}


async def attribute_types(
    pool: DbPool, attributes: Iterable[str] | None = None
) -> dict[str, TagDefinition]:
    """The live definition that types each attribute a registry tag reads (a tag named like
    it, else the first tag by name that reads it), among ``attributes`` or all of them: how
    profiles are loaded."""
    wanted = None if attributes is None else set(attributes)
    typed: dict[str, TagDefinition] = {}
    readers: list[tuple[bool, str, TagDefinition]] = []  # records come sorted by name
    for rec in await records(pool):
        live = rec.tag.live
        attribute = None if live is None else live.attribute(rec.tag.name)
        if live is None or attribute is None or (wanted is not None and attribute not in wanted):
            continue
        readers.append((attribute != rec.tag.name, attribute, live))
    for _, attribute, live in sorted(readers, key=lambda reader: reader[0]):  # stable
        typed.setdefault(attribute, live)
    return typed


async def records(pool: DbPool, names: Sequence[str] | None = None) -> list[TagRecord]:
    """Registry rows by name: ``names`` only, or every tag."""
    if names is None:
        rows = await pool.fetch(queries.TAGS_ALL)
    else:
        rows = await pool.fetch(queries.TAGS_BY_NAMES, list(names))
    return [_record(row) for row in rows]


async def record(pool: DbPool, name: str) -> TagRecord:
    """One tag's row; NotFound when the registry has no such tag."""
    found = await records(pool, [name])
    if not found:
        raise NotFound(f'tag "{name}" is not in the registry')
    return found[0]


async def define(pool: DbPool, tags: TagsFile) -> list[Defined]:
    """Store each definition as its tag's draft, in one transaction; every problem at once."""
    outcomes: list[Defined] = []
    problems: list[Problem] = []
    async with pool.acquire() as conn, conn.transaction():
        for name, definition in tags.tags.items():
            body = definition.model_dump(mode="json", exclude_none=True)
            if await conn.fetchval(queries.TAG_ENSURE + " RETURNING 1", name, body):
                outcomes.append(Defined(name, "created"))
                continue
            row = await conn.fetchrow(queries.TAG_LOCK, name)
            assert row is not None  # it exists: the insert above found it
            live = None if row["live"] is None else definition_of(row["live"])
            current = row["draft"] if row["draft"] is not None else row["live"]
            if current == body:
                outcomes.append(Defined(name, "unchanged"))
                continue
            if live is not None:
                problems.extend(_keeps_meaning(name, live, definition))
            await conn.execute(queries.TAG_SET_DRAFT, name, body)
            outcomes.append(Defined(name, "drafted"))
        if problems:
            raise TagRefused("tags", problems)  # the transaction rolls back every draft
    return outcomes


def _keeps_meaning(name: str, live: TagDefinition, new: TagDefinition) -> list[Problem]:
    if new.type != live.type:
        reason = f"a published tag keeps its type ({live.type}); define a new tag instead"
        return [Problem(f"tags.{name}.type", reason)]
    if new.passed_through != live.passed_through:
        # segments read no pass-through value: rules already published would change meaning
        reason = "a published tag cannot become, or stop being, a pass-through field"
        return [Problem(f"tags.{name}.source", reason)]
    if new.whose != live.whose:
        reason = f"a published tag keeps its kind ({live.whose}); define a new tag instead"
        return [Problem(f"tags.{name}.kind", reason)]
    dropped = sorted(set(live.values or ()) - set(new.values or ()))
    if dropped:
        reason = f"a published enum keeps its values; {', '.join(dropped)} would be dropped"
        return [Problem(f"tags.{name}.values", reason)]
    return []


async def mark_tested(pool: DbPool, name: str, *, draft: TagDefinition) -> None:
    """Record that ``draft``, the draft of ``name``, was tried and its value fit (publish
    requires it); a draft defined since stays untested."""
    await pool.execute(
        queries.TAG_MARK_TESTED, name, draft.model_dump(mode="json", exclude_none=True)
    )


async def publish(pool: DbPool, name: str) -> int:
    """Make the tested draft of ``name`` its live definition; return the new version."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.TAG_LOCK, name)
        if row is None:
            raise NotFound(f'tag "{name}" is not in the registry')
        if row["draft"] is None:
            raise TagRefused(f"tag {name}", [Problem("draft", "there is no draft to publish")])
        if row["draft_tested_at"] is None:
            reason = f"test the draft first: journeys tags test {name} --user USER"
            raise TagRefused(f"tag {name}", [Problem("draft", reason)])
        version = await conn.fetchval(queries.TAG_PUBLISH, name)
    return int(version)


async def set_state(pool: DbPool, name: str, state: TagState) -> None:
    """Disable a published tag, or enable a disabled one again."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.TAG_LOCK, name)
        if row is None:
            raise NotFound(f'tag "{name}" is not in the registry')
        if row["live"] is None:
            reason = "a draft is published first; it cannot be enabled or disabled"
            raise TagRefused(f"tag {name}", [Problem("state", reason)])
        await conn.execute(queries.TAG_SET_STATE, name, state)


@dataclass(frozen=True)
class Usage:
    """A plan version whose rules read a tag, and whether it is its plan's newest."""

    plan_id: str
    version: int
    newest: bool


async def usage(pool: DbPool, name: str) -> list[Usage]:
    """Every stored plan version whose rules read tag ``name``, newest first per plan."""
    found: list[Usage] = []
    newest_seen: set[str] = set()
    for row in await pool.fetch(queries.PLAN_BODIES):
        plan_id = row["plan_id"]
        newest = plan_id not in newest_seen
        newest_seen.add(plan_id)
        try:
            plan = Plan.model_validate(row["body"])
        except ValidationError:  # a version today's model no longer reads: not ours to judge
            log.warning(
                "tags usage: plan %s v%s does not validate; skipped", plan_id, row["version"]
            )
            continue
        if name in plan_tags(plan):
            found.append(Usage(plan_id, row["version"], newest))
    return found
