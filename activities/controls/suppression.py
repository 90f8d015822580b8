"""Suppression lists (unsubscribes, black lists) and the allow list of test users.

PostgreSQL holds the record (table ``suppressions``); each user's marks are copied into one
Redis set (``names.suppression_key``) that the delivery gate reads in its atomic call. Writes
go to PostgreSQL first, so a Redis lost or flushed is rebuilt whole by :meth:`sync`
(``journeys suppress sync``) and an unsubscribe is never only in memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import redis.asyncio as aioredis

from activities.db import audit_log, queries
from activities.db.pool import DbPool
from journeys.audit import MAX_USERS_LISTED, AuditAction, AuditRecord
from journeys.names import KEY_PREFIX, suppression_key

ALLOW_MARK = "+allow"
EVERY_CHANNEL = "*"
ListName = Literal["suppress", "allow"]
_CHANNEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def is_channel_name(value: str) -> bool:
    """Whether ``value`` is spelled like a channel name (the plan model's rule)."""
    return _CHANNEL_NAME.fullmatch(value) is not None


@dataclass(frozen=True)
class SuppressionEntry:
    """One mark: a user suppressed on a channel (``*``: all), or allowed as a test user."""

    user_id: str
    list: ListName
    channel: str
    reason: str | None
    source: str
    created_at: datetime


def _mark(list_name: ListName, channel: str) -> str:
    return ALLOW_MARK if list_name == "allow" else channel


class SuppressionStore:
    """Adds, removes and lists marks; keeps Redis in step with PostgreSQL."""

    def __init__(self, *, pool: DbPool, redis: aioredis.Redis) -> None:
        self._pool = pool
        self._redis = redis

    async def add(
        self,
        users: Sequence[str],
        *,
        channel: str = EVERY_CHANNEL,
        list_name: ListName = "suppress",
        reason: str | None = None,
        source: str = "cli",
        actor: str | None = None,
    ) -> int:
        """Mark ``users``; returns how many were not marked so already. Redis gets every
        user's mark (again), so an earlier write that reached only PostgreSQL heals. An
        operator's change (``actor``) goes in the audit log with the marks."""
        if list_name == "allow":
            channel = EVERY_CHANNEL
        if channel != EVERY_CHANNEL and not is_channel_name(channel):
            raise ValueError(f"not a channel name: {channel!r}")
        users = sorted(set(users))
        if not users:
            return 0
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                queries.SUPPRESSIONS_ADD, users, list_name, channel, reason, source
            )
            if actor is not None:
                await _audit(conn, "suppress", actor, users, list_name, channel, len(rows),
                             reason=reason, source=source)  # fmt: skip
        pipe = self._redis.pipeline(transaction=False)
        for user in users:
            pipe.sadd(suppression_key(user), _mark(list_name, channel))
        await pipe.execute()
        return len(rows)

    async def remove(
        self,
        users: Sequence[str],
        *,
        channel: str = EVERY_CHANNEL,
        list_name: ListName = "suppress",
        actor: str | None = None,
    ) -> int:
        """Unmark ``users``; returns how many were marked (audited as :meth:`add` is)."""
        if list_name == "allow":
            channel = EVERY_CHANNEL
        users = sorted(set(users))
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(queries.SUPPRESSIONS_REMOVE, users, list_name, channel)
            if actor is not None:
                await _audit(conn, "unsuppress", actor, users, list_name, channel, len(rows))
        pipe = self._redis.pipeline(transaction=False)
        for user in users:
            pipe.srem(suppression_key(user), _mark(list_name, channel))
        await pipe.execute()
        return len(rows)

    async def entries(
        self, *, user: str | None = None, list_name: ListName | None = None, limit: int = 1000
    ) -> list[SuppressionEntry]:
        """Marks, by user (all of them, or one user's), at most ``limit``."""
        rows = await self._pool.fetch(queries.SUPPRESSIONS_LIST, user, list_name, limit)
        return [SuppressionEntry(**dict(r)) for r in rows]

    async def sync(self) -> int:
        """Make Redis match PostgreSQL; returns the marks written. Marks are added before
        stale ones are removed, so no suppressed user is ever unmarked on the way."""
        written = 0
        async with self._pool.acquire() as conn, conn.transaction():
            pipe = self._redis.pipeline(transaction=False)
            async for row in conn.cursor(queries.SUPPRESSIONS_ALL):
                pipe.sadd(suppression_key(row["user_id"]), _mark(row["list"], row["channel"]))
                written += 1
                if written % 1000 == 0:
                    await pipe.execute()
            await pipe.execute()
        batch: list[bytes] = []
        async for key in self._redis.scan_iter(match=f"{KEY_PREFIX}:sup:*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                await self._drop_stale(batch)
                batch = []
        await self._drop_stale(batch)
        return written

    async def _drop_stale(self, keys: list[bytes]) -> None:
        """Remove the marks of ``keys`` that PostgreSQL does not hold."""
        if not keys:
            return
        users = {key.decode().split(":", 3)[3]: key for key in keys}
        held: dict[str, set[str]] = {user: set() for user in users}
        for row in await self._pool.fetch(queries.SUPPRESSIONS_OF, list(users)):
            held[row["user_id"]].add(_mark(row["list"], row["channel"]))
        pipe = self._redis.pipeline(transaction=False)
        for key in users.values():
            pipe.smembers(key)
        found = await pipe.execute()
        pipe = self._redis.pipeline(transaction=False)
        for (user, key), marks in zip(users.items(), found, strict=True):
            stale = {m.decode() for m in marks} - held[user]
            if stale:
                pipe.srem(key, *sorted(stale))
        await pipe.execute()


async def _audit(
    conn: audit_log.Executes,
    action: AuditAction,
    actor: str,
    users: Sequence[str],
    list_name: ListName,
    channel: str,
    changed: int,
    **detail: str | None,
) -> None:
    entry = AuditRecord(
        actor=actor,
        action=action,
        subject=f"{list_name}:{channel}",
        detail={
            "users": len(users),
            "changed": changed,
            "user_ids": list(users[:MAX_USERS_LISTED]),
            **detail,
        },
    )
    await audit_log.record(conn, entry)
