"""Names of the routes out of a routing node, encoded and decoded in this one place.

They are short and stable because they end up in Redis keys and in node counters: ``b0``,
``b1``.. and ``else`` for branches, ``a0``.. for arms, ``tz:{zone}`` for users' own time zones,
``ok`` for updates, ``hold`` for users waiting for a split's winner, ``failed`` for users a
check could not get an answer for. Activities write users
under these names; the shard interpreter reads them back to find where each route's users
go next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ELSE = "else"
OK = "ok"
HOLD = "hold"
"""Users an ab_split keeps until its winner is decided (a winning path in a blast)."""
FAILED = "failed"
"""Users a check step could not get an answer for (its service stayed down)."""
_BRANCH, _ARM, _ZONE = "b", "a", "tz:"


def branch_route(index: int) -> str:
    """Route name of the branch at ``index``."""
    return f"{_BRANCH}{index}"


def arm_route(index: int) -> str:
    """Route name of the arm at ``index``."""
    return f"{_ARM}{index}"


def zone_route(zone: str) -> str:
    """Route name of the users waiting in ``zone``."""
    return f"{_ZONE}{zone}"


@dataclass(frozen=True)
class Route:
    """A decoded route name: its kind and, for branches and arms, the index; for zones, the
    zone."""

    kind: Literal["branch", "else", "arm", "zone", "ok", "hold", "failed"]
    index: int = 0
    zone: str = ""


def parse_route(name: str) -> Route:
    """The route ``name`` stands for; raises ValueError on a name no encoder here makes."""
    if name == ELSE:
        return Route("else")
    if name == OK:
        return Route("ok")
    if name == HOLD:
        return Route("hold")
    if name == FAILED:
        return Route("failed")
    if name.startswith(_ZONE):
        return Route("zone", zone=name.removeprefix(_ZONE))
    for prefix, kind in ((_BRANCH, "branch"), (_ARM, "arm")):
        digits = name.removeprefix(prefix)
        if name.startswith(prefix) and digits.isascii() and digits.isdigit():
            return Route("branch" if kind == "branch" else "arm", index=int(digits))
    raise ValueError(f"not a route name: {name!r}")
