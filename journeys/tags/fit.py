"""Whether a stored value fits a tag's type, as profiles are loaded and tags are tested.

The forms are the rules' own: a datetime is ISO text (a date, or a date-time), as the
evaluator and ``journeys_ts`` / ``journeys_date`` read it.
"""

from __future__ import annotations

from journeys.rule_eval import as_moment
from journeys.tags.model import TagDefinition


def value_problem(definition: TagDefinition, value: object) -> str | None:
    """Why ``value`` (JSON-shaped) is not a value of the tag, or None when it fits."""
    kind = definition.type
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind in ("string", "enum"):
        ok = isinstance(value, str)
        if ok and kind == "enum" and value not in (definition.values or ()):
            return f"{value!r} is not one of {', '.join(definition.values or ())}"
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "datetime":
        ok = isinstance(value, str) and as_moment(value) is not None
    else:
        ok = isinstance(value, list)
    if ok:
        return None
    return f"{_shown(value)} is not a {kind} (see docs/tags.md for the forms)"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
