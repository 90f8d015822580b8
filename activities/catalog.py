"""The catalog of items and orders in PostgreSQL: loaded from files, read by item and order
tags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from activities.db import queries
from activities.db.pool import DbPool
from journeys.catalog_file import CatalogKind, CatalogRow
from journeys.tags.check import RegisteredTag

CHUNK = 10_000


async def load_catalog(pool: DbPool, kind: CatalogKind, rows: Sequence[CatalogRow]) -> int:
    """Upsert ``rows`` in one transaction (attributes merged into what is stored); how many.
    A key repeated in the file takes its last line's attributes over the earlier ones."""
    merged: dict[str, dict[str, object]] = {}
    for row in rows:
        merged.setdefault(row.key, {}).update(row.attrs)
    keys = list(merged)
    async with pool.acquire() as conn, conn.transaction():
        for start in range(0, len(keys), CHUNK):
            part = keys[start : start + CHUNK]
            await conn.execute(queries.CATALOG_UPSERT, kind, part, [merged[k] for k in part])
    return len(keys)


async def catalog_values(
    pool: DbPool, kind: CatalogKind, keys: Sequence[str], tags: Mapping[str, RegisteredTag]
) -> dict[str, dict[str, Any]]:
    """Each key's value of each of ``tags`` (item or order tags reading an attribute); keys
    the catalog does not hold have none."""
    rows = await pool.fetch(queries.CATALOG_ATTRS, kind, list(keys))
    stored = {r["key"]: r["attrs"] or {} for r in rows}
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        attrs = stored.get(key, {})
        values: dict[str, Any] = {}
        for name, tag in tags.items():
            attribute = tag.live.attribute(name) if tag.live is not None else None
            values[name] = attrs.get(attribute) if attribute is not None else None
        out[key] = values
    return out
