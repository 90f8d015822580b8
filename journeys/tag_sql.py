"""What a registry tag's value is in SQL: a jsonb expression over ``users u``.

The segment compiler (:mod:`journeys.rule_sql`) reads tags through :func:`registry_reader`,
and the page facts compute the same expressions for a page of users
(:mod:`activities.tags.values`), so a rule selects the same users either way. Computed
sources read only ``u.user_id``, so they also work over ids that have no profile row.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from journeys.rule_sql import Compiled, TagReader, attribute_value, props_predicate
from journeys.tags.model import AggregateSource, ListSource, TagDefinition


def tag_value(name: str, definition: TagDefinition, out: Compiled, now: datetime) -> str | None:
    """The jsonb expression of tag ``name`` at ``now``; None for a pass-through tag."""
    source = definition.source
    if isinstance(source, ListSource):
        member = (
            "SELECT 1 FROM audience_members m"
            f" WHERE m.audience = {out.bind(source.list, 'text')} AND m.user_id = u.user_id"
        )
        return f"to_jsonb(EXISTS ({member}))"
    if isinstance(source, AggregateSource):
        return _aggregate(source, out, now)
    attribute = definition.attribute(name)
    return None if attribute is None else attribute_value(attribute, out)


def _aggregate(source: AggregateSource, out: Compiled, now: datetime) -> str:
    where = [
        f"e.name = {out.bind(source.event, 'text')}",
        f"e.ts BETWEEN {out.bind(now - source.within, 'timestamptz')}"
        f" AND {out.bind(now, 'timestamptz')}",
        props_predicate(source.where, out, now),
    ]
    if source.aggregate == "count":
        return f"to_jsonb(COALESCE({out.per_user('count(*)', ' AND '.join(where))}, 0))"
    assert source.property is not None  # the model requires it for every other aggregate
    prop = f"(e.props -> {out.bind(source.property, 'text')})"
    where.append(f"jsonb_typeof({prop}) = 'number'")
    # CASE, not a bare cast: PostgreSQL may test the type after casting otherwise
    number = f"(CASE WHEN jsonb_typeof({prop}) = 'number' THEN ({prop})::numeric END)"
    return f"to_jsonb({out.per_user(f'{source.aggregate}({number})', ' AND '.join(where))})"


def registry_reader(definitions: Mapping[str, TagDefinition]) -> TagReader:
    """A tag reader over ``definitions``; a tag outside them reads the profile attribute of
    its name (plan versions published before the registry existed keep working)."""

    def read(tag: str, out: Compiled, now: datetime) -> str | None:
        definition = definitions.get(tag)
        if definition is None:
            return attribute_value(tag, out)
        return tag_value(tag, definition, out, now)

    return read
