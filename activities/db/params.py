"""Statement parameters in the shapes the queries expect."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def json_list(items: Iterable[Any]) -> str:
    """A list parameter as one JSON array (the queries read it with
    ``json_array_elements_text``): asyncpg encodes a ``text[]`` element by element, about
    0.6 us each, while ``json.dumps`` encodes a page of 1,000 in a tenth of that."""
    return json.dumps(list(items), ensure_ascii=False, separators=(",", ":"))
