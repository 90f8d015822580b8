"""Profiles files: the typing of a CSV cell, and JSON Lines read into rows for ``users``.

CSV (loaded by PostgreSQL, :mod:`activities.profiles`): a ``user_id`` column, optional
``email``, ``phone`` and ``timezone`` columns, and every other column an attribute. A cell is
typed as the rules will read it (:func:`cell_value`, which the SQL mirrors): ``true`` /
``false`` are booleans, numbers are numbers, an empty cell is no value (the attribute is left
as it was), anything else is text. JSON Lines: one object a line, ``user_id`` and the contact
columns at the top, attributes either under ``attrs`` or as the other keys, typed as written.

Rows come in chunks, so a file of millions never sits in memory at once. A bad row is skipped
and reported with its line number and reason, unless there are more than ``max_bad_share`` of
them: then the whole file is refused, as it usually is the wrong file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from journeys.event_checks import id_problem, props_problems
from journeys.events import MAX_USER_ID

COLUMNS = ("email", "phone", "timezone")
CHUNK = 50_000
MAX_ATTRS_DEPTH = 8
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class ProfileRow:
    """One profile as it goes into ``users``: ``None`` columns leave the stored value."""

    line: int
    user_id: str
    email: str | None
    phone: str | None
    timezone: str | None
    attrs: dict[str, object]


@dataclass(frozen=True)
class BadRow:
    """A skipped line: its number in the file and why."""

    line: int
    reason: str


def cell_value(text: str) -> object | None:
    """A CSV cell as the rules read it: bool, number, text, or None when empty (the reference
    for the SQL that types cells on load; a test holds the two together)."""
    if text == "":
        return None
    first = text[0]
    if first == "t" or first == "f":
        return text == "true" if text in ("true", "false") else text
    if (first.isdigit() or first == "-") and _NUMBER.fullmatch(text):
        if "." not in text and "e" not in text and "E" not in text:
            return int(text)
        number = float(text)
        return number if math.isfinite(number) else text  # 1e400 is not a number we keep
    return text


def read_rows(path: Path) -> Iterator[ProfileRow | BadRow]:
    """Every line of a JSON Lines ``path`` as a row or a bad row, in file order (CSV files are
    read by PostgreSQL itself: :mod:`activities.profiles`)."""
    yield from _jsonl(path)


def _jsonl(path: Path) -> Iterator[ProfileRow | BadRow]:
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                yield BadRow(line, "not a JSON object")
                continue
            if not isinstance(data, dict):
                yield BadRow(line, "not a JSON object")
                continue
            attrs = data.get("attrs")
            if attrs is None:
                attrs = {k: v for k, v in data.items() if k not in ("user_id", *COLUMNS)}
            if not isinstance(attrs, dict):
                yield BadRow(line, "attrs must be an object")
                continue
            yield _row(line, data.get("user_id"), data, attrs)


def _row(
    line: int,
    user_id: object,
    values: Mapping[str, object],
    attrs: dict[str, object],
) -> ProfileRow | BadRow:
    if not isinstance(user_id, str) or not user_id.strip():
        return BadRow(line, "user_id is missing")
    user_id = user_id.strip()
    reason = id_problem(user_id)
    if reason is None and len(user_id) > MAX_USER_ID:
        reason = f"is {len(user_id)} characters, at most {MAX_USER_ID}"
    if reason is not None:
        return BadRow(line, f"user_id {reason}")
    columns: dict[str, str | None] = {}
    for name in COLUMNS:
        value = values.get(name)
        if value in (None, ""):
            columns[name] = None
        elif not isinstance(value, str) or "\x00" in value:
            return BadRow(line, f"{name} must be text")
        else:
            columns[name] = value.strip()
    zone = columns["timezone"]
    if zone is not None and not _is_zone(zone):
        return BadRow(line, f'timezone "{zone[:60]}" is not an IANA time zone')
    for where, reason in props_problems(attrs, max_depth=MAX_ATTRS_DEPTH):
        return BadRow(line, f"{where.replace('props', 'attrs', 1)} {reason}")
    return ProfileRow(line, user_id, columns["email"], columns["phone"], zone, attrs)


@lru_cache(maxsize=1024)
def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
