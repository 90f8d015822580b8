"""Registry tag values for a page of users, as the page's rules read them.

Attribute tags named like their attribute need nothing (the profile already holds them).
An attribute tag reading another attribute, and a pass-through tag (the entry event's
field), are copied from what the page loaded. Computed tags (list membership, event
aggregates) run the same SQL expressions the segment compiler uses (:mod:`journeys.tag_sql`),
one query per tag for the whole page, and are cached in Redis for the tag's cache TTL (seed 004:
a tag queried per request must not bring its source down).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from activities.db.pool import DbPool
from journeys.names import tag_value_key
from journeys.rule_sql import Compiled
from journeys.tag_sql import tag_value
from journeys.tags.check import RegisteredTag
from journeys.tags.model import FieldSource, TagDefinition

TagValues = dict[str, dict[str, Any]]
"""user -> tag -> value; None: the tag has no value for the user (whatever the profile holds
under the tag's name, which the tag does not read)."""


def passes_through(found: Mapping[str, RegisteredTag]) -> bool:
    """Whether any of the tags reads a pass-through field (the page needs its entry events)."""
    return any(tag.live is not None and tag.live.passed_through for tag in found.values())


async def page_tag_values(
    pool: DbPool,
    redis: aioredis.Redis | None,
    *,
    found: Mapping[str, RegisteredTag],
    users: Sequence[str],
    attrs: Mapping[str, Mapping[str, Any]],
    entry: Mapping[str, Mapping[str, Any]],
    now: datetime,
) -> TagValues:
    """The value (or None) of each registry tag of ``found`` that does not simply read the
    profile attribute of its own name, for each of ``users`` (tags outside the registry
    read that attribute). Without ``redis``, computed values are not cached."""
    values: TagValues = {u: {} for u in users}
    computed: list[RegisteredTag] = []
    for name, tag in found.items():
        definition = tag.live
        if definition is None:
            continue  # a draft: no plan version can read it (publish checks)
        if definition.computed:
            computed.append(tag)
        elif isinstance(definition.source, FieldSource):
            field = definition.source.field
            for user in users:
                values[user][name] = entry.get(user, {}).get(field)
        elif (attribute := definition.attribute(name)) not in (None, name):
            assert attribute is not None
            for user in users:
                values[user][name] = attrs.get(user, {}).get(attribute)
    for tag in computed:
        found_values = await _cached(pool, redis, tag, users, now)
        for user in users:
            values[user][tag.name] = found_values.get(user)
    return values


async def _cached(
    pool: DbPool,
    redis: aioredis.Redis | None,
    tag: RegisteredTag,
    users: Sequence[str],
    now: datetime,
) -> dict[str, Any]:
    assert tag.live is not None  # the caller passes published tags
    ttl = tag.live.ttl()
    if not ttl or redis is None:
        return await computed_values(pool, tag.name, tag.live, users, now=now)
    keys = [tag_value_key(tag.name, tag.live_version, user) for user in users]
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    cached = await pipe.execute()
    found = {u: json.loads(raw) for u, raw in zip(users, cached, strict=True) if raw is not None}
    missing = [u for u in users if u not in found]
    if missing:
        fresh = await computed_values(pool, tag.name, tag.live, missing, now=now)
        pipe = redis.pipeline(transaction=False)
        for user in missing:
            key = tag_value_key(tag.name, tag.live_version, user)
            pipe.set(key, json.dumps(fresh.get(user)), px=int(ttl.total_seconds() * 1000))
        await pipe.execute()
        found.update(fresh)
    return found


async def computed_values(
    pool: DbPool, name: str, definition: TagDefinition, users: Sequence[str], *, now: datetime
) -> dict[str, Any]:
    """Tag ``name``'s value for each of ``users`` now, by its SQL expression (None: none;
    also for a pass-through tag, which only a caller knows). A user without a profile row
    reads no attribute but still has events and list memberships."""
    out = Compiled(grouped=False)  # a page's users: one indexed lookup each
    ids = out.bind(list(users), "text[]")
    expression = tag_value(name, definition, out, now) or "NULL::jsonb"
    query = (
        f"SELECT u.user_id, {expression} AS value FROM (SELECT i.user_id, p.attrs, p.email,"
        f" p.phone, p.timezone FROM unnest({ids}) AS i(user_id)"
        " LEFT JOIN users p ON p.user_id = i.user_id) AS u"
    )
    rows = await pool.fetch(query, *out.params)
    return {row["user_id"]: row["value"] for row in rows}
