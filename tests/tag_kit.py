"""Publishing tags into a test database, as an operator would with the CLI."""

from __future__ import annotations

from pathlib import Path

from activities.db import tag_store
from activities.db.pool import DbPool
from journeys.tags.model import TagsFile, load_tags_file


async def publish_model(pool: DbPool, tags: TagsFile) -> list[str]:
    """Define ``tags``, mark each pending draft tested, publish it; return those published."""
    await tag_store.define(pool, tags)
    published = []
    for rec in await tag_store.records(pool, sorted(tags.tags)):
        if rec.tag.draft is not None:
            await tag_store.mark_tested(pool, rec.tag.name, draft=rec.tag.draft)
            await tag_store.publish(pool, rec.tag.name)
            published.append(rec.tag.name)
    return published


async def publish_tags(pool: DbPool, path: Path) -> list[str]:
    """:func:`publish_model` of the tags file at ``path``."""
    return await publish_model(pool, load_tags_file(path))
