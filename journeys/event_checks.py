"""Checks on an event as it arrives, before the model sees it: what PostgreSQL, JSON and the
workflows downstream cannot carry is refused here with the exact place and reason.

PostgreSQL's ``text`` and ``jsonb`` cannot hold U+0000; a lone surrogate cannot be encoded as
UTF-8; ``NaN`` and ``1e400`` (which parses as infinity) are not JSON numbers; deep nesting
makes every later walk over the value recursive and slow. Each is an error for the sender.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

MAX_PROPS_DEPTH = 8
"""Default deepest nesting of ``props`` (``{"a": {"b": 1}}`` is 2;
``JOURNEYS_EVENT_PROPS_MAX_DEPTH``)."""
PROPS_DEPTH_CEILING = 32

_ID_CHARS = r"[^\u0000-\u001f\u007f]"
ID_PATTERN = f"^{_ID_CHARS}+$"
"""``user_id`` and ``event_id``: any characters but control characters (they break logs,
CSV exports and PostgreSQL)."""
_CONTROL = re.compile(r"[\u0000-\u001f\u007f]")
TEXT_PATTERN = r"^[^\u0000]*$"
"""Strings and keys inside ``props``: anything PostgreSQL's jsonb can store."""

_LEAP_YEARS = r"19(?:7[26]|8[048]|9[26])|20(?:[02468][048]|[13579][26])"
_DATE = (
    r"(?:(?:19[7-9]\d|20\d\d)-(?:"
    r"(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-8]))"
    rf"|(?:{_LEAP_YEARS})-02-29)"
)
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
_OFFSET = r"(?:Z|[+-](?:0\d|1[0-3]):[0-5]\d|[+-]14:00)"
TS_PATTERN = f"^{_DATE}T{_TIME}{_OFFSET}$"
"""RFC 3339 with a required offset, years 1970 to 2099, offsets up to ±14:00: every string
it matches is a real instant, so the OpenAPI document can state the rule exactly."""
_TS = re.compile(TS_PATTERN.removeprefix("^").removesuffix("$"), re.ASCII)
TS_RULE = "must be ISO 8601 with an offset, like 2026-06-01T09:00:00+08:00, years 1970 to 2099"


def parse_ts(value: object) -> datetime:
    """The instant of an event's ``ts`` string; raises ``ValueError`` with :data:`TS_RULE`."""
    if not isinstance(value, str) or not _TS.fullmatch(value):
        raise ValueError(TS_RULE)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a ``user_id`` / ``event_id``, or None."""
    if _CONTROL.search(value):
        return "must not contain control characters"
    return _unicode_problem(value)


def props_problems(props: Mapping[str, object], *, max_depth: int) -> Iterator[tuple[str, str]]:
    """(path, reason) for each value in ``props`` that cannot be stored and carried.

    Iterative, so a value nested thousands deep is refused, never a ``RecursionError``."""
    stack: list[tuple[str, object, int]] = [("props", props, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, Mapping | list) and depth > max_depth:
            yield path, f"nested deeper than {max_depth} levels"
            continue
        if isinstance(value, Mapping):
            for key, item in reversed(list(value.items())):
                where = f"{path}.{key}" if _printable(key) else f"{path}.<key>"
                reason = _text_problem(key) if isinstance(key, str) else "keys must be strings"
                if reason is not None:
                    yield where, f"key {reason}"
                    continue
                stack.append((where, item, depth + 1))
        elif isinstance(value, list):
            for index in range(len(value) - 1, -1, -1):
                stack.append((f"{path}.{index}", value[index], depth + 1))
        elif isinstance(value, str):
            reason = _text_problem(value)
            if reason is not None:
                yield path, reason
        elif isinstance(value, float) and not math.isfinite(value):
            yield path, "must be a finite number (NaN, Infinity and 1e400 are not JSON)"


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain NUL (U+0000)"
    return _unicode_problem(value)


def _unicode_problem(value: str) -> str | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def _printable(key: object) -> bool:
    return isinstance(key, str) and key.isprintable() and len(key) <= 100
