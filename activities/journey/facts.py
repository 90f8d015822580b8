"""What rules read about a page of users (profiles, recent events, the entry event), and
exit checks.

Every page activity calls :func:`admit` first, so a user removed by an exit criterion is
skipped at whatever node they stand, between pages and after waits alike.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from activities.db import queries, tag_store
from activities.db.params import json_list
from activities.db.pool import DbPool
from activities.run_state import execute_checked
from activities.tags.values import page_tag_values, passes_through
from journeys.plan.rule_sites import rule_tags
from journeys.rule_eval import (
    EventFact,
    UserFacts,
    evaluate,
    event_names,
    lookback,
    reads_entry,
)
from journeys.rules import Rule


async def entry_props(
    pool: DbPool, run_id: str, entries: Mapping[str, int]
) -> dict[str, Mapping[str, Any]]:
    """The props of the event that started each user's entry ``entries[user]`` of run
    ``run_id``: what ``entry.*`` tags, ``{{ event.* }}`` and ``match_entry`` read. Audience
    entries (number 0) have none, so a page without event entries makes no query; a user
    missing from the answer has no stored entry."""
    users = sorted(u for u, n in entries.items() if n > 0)
    if not users:
        return {}
    rows = await pool.fetch(queries.ENTRIES_PROPS, run_id, users, [entries[u] for u in users])
    return {r["user_id"]: r["props"] or {} for r in rows}


async def load_facts(
    pool: DbPool,
    users: Sequence[str],
    *,
    rules: Iterable[Rule] = (),
    now: datetime,
    entries: Mapping[str, int] | None = None,
    run_id: str | None = None,
    redis: aioredis.Redis | None = None,
    entry_given: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, UserFacts]:
    """Profiles of ``users`` (an unknown user has empty attributes); when ``rules`` read
    behaviours, their events of those names inside the longest window; when they read
    ``entry.*`` tags or pass-through tags, the props of each user's entry event; the values
    of the registry tags they read (computed ones cached in ``redis``). ``entries`` maps
    users to their entry number in run ``run_id`` (a cohort member's score, see
    :func:`page_users`); without both, or for users with no event entry, ``entry.*`` reads
    nothing. ``entry_given`` is the entry event itself, for a rule checked as it arrives."""
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
    tags = rule_tags(rules)
    found = await tag_store.registry(pool, tags) if tags else {}
    entry: Mapping[str, Mapping[str, Any]] = entry_given or {}
    wants_entry = passes_through(found) or any(reads_entry(rule) for rule in rules)
    if entry_given is None and run_id is not None and entries and wants_entry:
        entry = await entry_props(pool, run_id, {u: entries[u] for u in users if u in entries})
    if found:
        values = await page_tag_values(
            pool, redis, found=found, users=users, attrs=attrs, entry=entry, now=now
        )
        for user, tagged in values.items():
            for tag, value in tagged.items():
                # a tag without a value is absent, whatever the profile holds under its name
                if value is None:
                    attrs[user].pop(tag, None)
                else:
                    attrs[user][tag] = value
    return {
        u: UserFacts(attrs=attrs[u], events=tuple(events[u]), entry=entry.get(u, {})) for u in users
    }


async def page_users(
    redis: aioredis.Redis, *, key: str, page: int, page_size: int, state_key: str | None = None
) -> dict[str, int]:
    """Page ``page`` of a cohort: ranks ``page * page_size`` on (stable while it is paged),
    each user with their entry number (the member's score; 0 outside event entries).
    ``state_key``: the shard's mark, checked after the read (:mod:`activities.run_state`)."""
    start = page * page_size
    # The bare command: redis-py's zrange(withscores=True) turns RESP3 pairs back into RESP2
    # tuples, half the CPU of reading a page. Pairs (RESP3) or a flat list (RESP2) both read.
    pipe = redis.pipeline(transaction=False)  # the mark shares the cohort's slot
    pipe.execute_command("ZRANGE", key, start, start + page_size - 1, "WITHSCORES")
    raw: list[Any] = (await execute_checked(pipe, state_key))[0]
    pairs = raw if raw and isinstance(raw[0], list) else zip(raw[::2], raw[1::2], strict=True)
    members: dict[str, int] = {}
    for member, score in pairs:
        members[member.decode() if isinstance(member, bytes) else str(member)] = int(float(score))
    return members


async def admit(
    redis: aioredis.Redis,
    pool: DbPool,
    *,
    users: list[str],
    exited_key: str | None,
    exit_rules: Sequence[Rule],
    now: datetime,
    entries: Mapping[str, int] | None = None,
    run_id: str | None = None,
) -> tuple[list[str], int]:
    """``users`` minus those an exit criterion removed; returns (kept, newly counted exits).

    Users already in the exited set (an exit event) are dropped; the exit rules are checked
    on the rest, and the ones they match join the set so later nodes skip them cheaply.
    ``entries`` (users' entry numbers) and ``run_id`` let exit rules read ``entry.*``, as in
    :func:`load_facts`.
    """
    if exited_key is None or not users:
        return users, 0
    scores = await redis.zmscore(exited_key, users)
    kept = [u for u, score in zip(users, scores, strict=True) if score is None]
    dropped = len(users) - len(kept)
    if exit_rules and kept:
        facts = await load_facts(
            pool, kept, rules=exit_rules, now=now, entries=entries, run_id=run_id, redis=redis
        )
        leaving = [u for u in kept if any(evaluate(r, facts[u], now=now) for r in exit_rules)]
        if leaving:
            await redis.zadd(exited_key, dict.fromkeys(leaving, 0))
            gone = set(leaving)
            kept = [u for u in kept if u not in gone]
            dropped += len(leaving)
    return kept, dropped
