"""Catalog files: the items (by sku) and orders (by order id) that item and order tags read.

JSON Lines, one object a line: ``{"id": "sku-1", "attrs": {"brand": "acme", "price": 99}}``
(or the attributes as the other keys beside ``id``). Every line is checked before anything is
stored, and a file with a bad line is refused whole, naming each bad line: a catalog is
usually loaded by a job, and half a catalog answers decisions wrongly without a word.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from journeys.event_checks import id_problem, props_problems
from journeys.events import MAX_USER_ID

CatalogKind = Literal["item", "order"]
MAX_ATTRS_DEPTH = 8
MAX_BAD_LINES = 20
"""Bad lines named in a refusal (the count says how many more)."""


@dataclass(frozen=True)
class CatalogRow:
    """One item or order and its attributes."""

    key: str
    attrs: dict[str, object]


def read_catalog(path: Path) -> tuple[list[CatalogRow], list[tuple[int, str]]]:
    """The rows of a JSON Lines catalog file, and its bad lines (line number, reason)."""
    rows: list[CatalogRow] = []
    bad: list[tuple[int, str]] = []
    for line, outcome in _lines(path):
        if isinstance(outcome, str):
            bad.append((line, outcome))
        else:
            rows.append(outcome)
    return rows, bad


def _lines(path: Path) -> Iterator[tuple[int, CatalogRow | str]]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line, text in enumerate(handle, start=1):
            if text.strip():
                yield line, _row(text)


def _row(text: str) -> CatalogRow | str:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return "not a JSON object"
    if not isinstance(data, dict):
        return "not a JSON object"
    key = data.get("id")
    if not isinstance(key, str) or not key.strip():
        return "id is missing"
    key = key.strip()
    reason = id_problem(key)
    if reason is None and len(key) > MAX_USER_ID:
        reason = f"is {len(key)} characters, at most {MAX_USER_ID}"
    if reason is not None:
        return f"id {reason}"
    attrs = data["attrs"] if "attrs" in data else {k: v for k, v in data.items() if k != "id"}
    if not isinstance(attrs, dict):
        return "attrs must be an object"
    for where, why in props_problems(attrs, max_depth=MAX_ATTRS_DEPTH):
        return f"{where.replace('props', 'attrs', 1)} {why}"
    return CatalogRow(key, attrs)
