"""What rules read about a page of users (profiles and recent events), and exit checks.

Every page activity calls :func:`admit` first, so a user removed by an exit criterion is
skipped at whatever node they stand, between pages and after waits alike.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from activities.db import queries
from activities.db.params import json_list
from journeys.rule_eval import EventFact, UserFacts, evaluate, event_names, lookback
from journeys.rules import Rule


async def load_facts(
    pool: Any, users: Sequence[str], *, rules: Iterable[Rule] = (), now: datetime
) -> dict[str, UserFacts]:
    """Profiles of ``users`` (an unknown user has empty attributes) and, when ``rules``
    read behaviours, their events of those names inside the longest window."""
    rules = list(rules)
    rows = await pool.fetch(queries.USERS_BY_IDS, json_list(users))
    attrs: dict[str, dict[str, Any]] = {u: {} for u in users}
    for row in rows:
        profile = dict(row["attrs"] or {})
        for column in ("timezone", "email", "phone"):
            if row[column] is not None:
                profile.setdefault(column, row[column])
        attrs[row["user_id"]] = profile
    events: dict[str, list[EventFact]] = defaultdict(list)
    names = sorted(set().union(*(event_names(rule) for rule in rules))) if rules else []
    if names:
        windows = [w for w in (lookback(rule) for rule in rules) if w is not None]
        since = now - max(windows)
        for row in await pool.fetch(queries.EVENTS_FOR_USERS, list(users), names, since, now):
            events[row["user_id"]].append(
                EventFact(name=row["name"], ts=row["ts"], props=row["props"] or {})
            )
    return {u: UserFacts(attrs=attrs[u], events=tuple(events[u])) for u in users}


async def page_users(
    redis: aioredis.Redis, *, key: str, page: int, page_size: int
) -> dict[str, int]:
    """Page ``page`` of a cohort: ranks ``page * page_size`` on (stable while it is paged),
    each user with their entry number (the member's score; 0 outside event entries)."""
    start = page * page_size
    # The bare command: redis-py's zrange(withscores=True) turns RESP3 pairs back into RESP2
    # tuples, half the CPU of reading a page. Pairs (RESP3) or a flat list (RESP2) both read.
    raw: list[Any] = await redis.execute_command(  # type: ignore[no-untyped-call]
        "ZRANGE", key, start, start + page_size - 1, "WITHSCORES"
    )
    pairs = raw if raw and isinstance(raw[0], list) else zip(raw[::2], raw[1::2], strict=True)
    members: dict[str, int] = {}
    for member, score in pairs:
        members[member.decode() if isinstance(member, bytes) else str(member)] = int(float(score))
    return members


async def admit(
    redis: aioredis.Redis,
    pool: Any,
    *,
    users: list[str],
    exited_key: str | None,
    exit_rules: Sequence[Rule],
    now: datetime,
) -> tuple[list[str], int]:
    """``users`` minus those an exit criterion removed; returns (kept, newly counted exits).

    Users already in the exited set (an exit event) are dropped; the exit rules are checked
    on the rest, and the ones they match join the set so later nodes skip them cheaply.
    """
    if exited_key is None or not users:
        return users, 0
    scores = await redis.zmscore(exited_key, users)
    kept = [u for u, score in zip(users, scores, strict=True) if score is None]
    dropped = len(users) - len(kept)
    if exit_rules and kept:
        facts = await load_facts(pool, kept, rules=exit_rules, now=now)
        leaving = [u for u in kept if any(evaluate(r, facts[u], now=now) for r in exit_rules)]
        if leaving:
            await redis.zadd(exited_key, dict.fromkeys(leaving, 0))
            gone = set(leaving)
            kept = [u for u in kept if u not in gone]
            dropped += len(leaving)
    return kept, dropped
