"""Turning pydantic validation errors into :class:`~journeys.errors.Problem` lines people read.

Paths are dotted (``steps.split.ab_split.arms``); built-in pydantic messages are rewritten into
short phrases (``unknown field``, ``field required``) and the ``Value error,`` prefix goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from journeys.errors import Problem

CROSS_CHECK = "journeys_cross_check"
"""Error type of whole-document checks raised inside models (see :func:`cross_check_error`).

Loaders report those checks from the raw document with precise paths instead, so they skip
this type; it only shows when a model is validated directly.
"""

# rule forms appear twice in a pydantic location: once as the union tag, once as the field
_RULE_TAGS = frozenset({"all", "any", "not", "tag", "event"})
_TAG_NOUNS = {
    ("steps", "type"): "step type",
    ("entry", "type"): "entry type",
    ("audience", "source"): "audience source",
    ("channels", "kind"): "provider kind",
}
_SIMPLE = {
    "missing": "field required",
    "extra_forbidden": "unknown field",
    "union_tag_not_found": "field required",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "datetime_type": "must be a date-time like 2025-06-01T09:00:00+08:00",
    "datetime_parsing": "must be a date-time like 2025-06-01T09:00:00+08:00",
    "datetime_from_date_parsing": "must be a date-time like 2025-06-01T09:00:00+08:00",
    "timezone_aware": "needs a UTC offset, like 2025-06-01T09:00:00+08:00",
}


def cross_check_error(problems: Sequence[Problem]) -> PydanticCustomError:
    """One pydantic error standing for the whole-document problems a model found in itself."""
    text = "; ".join(str(problem) for problem in problems)
    return PydanticCustomError(CROSS_CHECK, "{problems}", {"problems": text})


def _quoted_list(text: str) -> str:
    return ", ".join(re.findall(r"'([^']*)'", text)) or text


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _message(error: ErrorDetails, discriminator_noun: str) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "union_tag_invalid":
        expected = ", ".join(sorted(_quoted_list(ctx["expected_tags"]).split(", ")))
        return f'unknown {discriminator_noun} "{ctx["tag"]}" (expected one of: {expected})'
    if kind == "literal_error":
        return f"must be one of: {_quoted_list(ctx['expected'])}; got {_show(error['input'])}"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind in ("too_short", "too_long"):
        bound = ctx.get("min_length", ctx.get("max_length"))
        word = "least" if kind == "too_short" else "most"
        return f"must have at {word} {bound} item{'s' if bound != 1 else ''}"
    if kind == "string_too_short":
        return "must not be empty" if ctx["min_length"] == 1 else error["msg"]
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    bounds = {
        "greater_than": "must be greater than {gt}",
        "greater_than_equal": "must be at least {ge}",
        "less_than": "must be less than {lt}",
        "less_than_equal": "must be at most {le}",
    }
    if kind in bounds:
        return bounds[kind].format(**ctx)
    return error["msg"]


def format_path(loc: Sequence[int | str]) -> str:
    """A pydantic location as a dotted path, without union-tag echoes and ``[key]`` markers."""
    parts: list[str] = []
    for index, segment in enumerate(loc):
        if segment == "[key]":
            continue
        if segment in _RULE_TAGS and index + 1 < len(loc) and loc[index + 1] == segment:
            continue
        parts.append(str(segment))
    return ".".join(parts)


def problems_from_error(exc: ValidationError, *, skip: Iterable[str] = ()) -> list[Problem]:
    """Every error of ``exc`` as a :class:`Problem`, except those whose type is in ``skip``."""
    skipped = set(skip)
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        if error["type"] in skipped:
            continue
        loc = list(error["loc"])
        noun = ""
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            field = str(error.get("ctx", {}).get("discriminator", "")).strip("'")
            if field:
                noun = _TAG_NOUNS.get((str(loc[0]) if loc else "", field), field)
                loc.append(field)
        problems.append(Problem(format_path(loc), _message(error, noun)))
    return problems


def _path_key(path: str) -> tuple[tuple[int, int, str], ...]:
    # numeric segments sort as numbers so arms.10 comes after arms.2
    return tuple(
        (0, int(part), "") if part.isascii() and part.isdigit() else (1, 0, part)
        for part in path.split(".")
    )


def sorted_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Problems de-duplicated and sorted by path, then reason."""
    return sorted(set(problems), key=lambda problem: (_path_key(problem.path), problem.reason))
