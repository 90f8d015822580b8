"""Quiet hours: whether a user's local time is inside the window, and when it ends."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import datetime, time

from journeys.contracts.controls import QuietRule
from journeys.schedule import next_local_time, zone_or

DEFER = "defer"
DROP = "quiet_hours"
"""The gate's codes for a user inside quiet hours (a deferred user is later sent or dropped
for ``quiet_hours``)."""


def inside(local: time, *, start: time, end: time) -> bool:
    """``local`` falls in [start, end), the window wrapping midnight when end < start."""
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_verdicts(
    rule: QuietRule, *, now: datetime, zones: Mapping[str, str | None]
) -> dict[str, tuple[str, datetime | None]]:
    """Users of ``zones`` (user -> profile zone) inside quiet hours now: ``(DEFER, release)``
    or ``(DROP, None)`` when the rule drops, or the release is further than ``max_defer``.
    Users outside the window are left out."""
    found: dict[str, tuple[str, datetime | None]] = {}
    by_zone: dict[str, tuple[str, datetime | None] | None] = {}
    for user, profile_zone in zones.items():
        zone = rule.zone or zone_or(profile_zone, rule.fallback)
        if zone not in by_zone:
            by_zone[zone] = _verdict(rule, now, zone)
        verdict = by_zone[zone]
        if verdict is not None:
            found[user] = verdict
    return found


def _verdict(rule: QuietRule, now: datetime, zone: str) -> tuple[str, datetime | None] | None:
    local = now.astimezone(zoneinfo.ZoneInfo(zone)).time()
    if not inside(local, start=rule.start, end=rule.end):
        return None
    if rule.mode == "drop":
        return DROP, None
    release = next_local_time(now, at=rule.end, zone=zone)
    if release - now > rule.max_defer:
        return DROP, None
    return DEFER, release
