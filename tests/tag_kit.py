"""Publishing a tags file into a test database, as an operator would with the CLI."""

from __future__ import annotations

from pathlib import Path

from activities.db import tag_store
from activities.db.pool import DbPool
from journeys.tags.model import load_tags_file


async def publish_tags(pool: DbPool, path: Path) -> list[str]:
    """Define, test (mark) and publish every tag of ``path`` that is new or changed."""
    done = await tag_store.define(pool, load_tags_file(path))
    changed = [item.name for item in done if item.outcome != "unchanged"]
    for name in changed:
        await tag_store.mark_tested(pool, name)
        await tag_store.publish(pool, name)
    return changed
