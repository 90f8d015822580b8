"""API keys in PostgreSQL: created (shown once), listed, revoked, and checked per request.

A check costs no query most of the time: each key's row, and whether any key is active at
all, are kept in process for :data:`KEYS_TTL`, so a revoked key stops working within it.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import JsonValue

from activities.db import audit_log, queries
from activities.db.pool import DbPool
from journeys.api_keys import SCOPES, Scope, digest_of, key_id_of, new_key
from journeys.audit import AuditRecord
from journeys.errors import JourneysError, NotFound

KEYS_TTL = timedelta(seconds=2)


@dataclass(frozen=True)
class ApiKey:
    """A key as the API sees it: its id, name, scopes and own rate (None: no limit)."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    rate: float | None


@dataclass(frozen=True)
class ListedKey:
    """A key as ``journeys keys list`` shows it."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    rate: float | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyStore:
    """Keys for one process; ``clock`` is for tests."""

    def __init__(self, pool: DbPool, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._clock = clock
        self._rows: dict[str, tuple[float, ApiKey | None, str | None]] = {}
        self._active: tuple[float, bool] | None = None

    async def create(
        self, name: str, *, scopes: Sequence[str], rate: float | None, by: str | None = None
    ) -> str:
        """A new key with ``scopes``; the key itself, which is not kept. Recorded in the audit
        log (as ``by``) with the key's row."""
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise JourneysError(
                f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}"
            )
        key, key_id = new_key()
        listed: list[JsonValue] = [*sorted(set(scopes))]
        detail: dict[str, JsonValue] = {"name": name, "scopes": listed, "rate": rate}
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.fetchval(
                queries.API_KEY_INSERT, key_id, name, digest_of(key), sorted(set(scopes)), rate
            )
            await audit_log.record(conn, AuditRecord(actor=by or "unknown", action="key_create",
                                                     subject=key_id, detail=detail))  # fmt: skip
        return key

    async def listed(self) -> list[ListedKey]:
        """Every key ever made, revoked ones too, oldest first."""
        rows = await self._pool.fetch(queries.API_KEYS_LIST)
        return [
            ListedKey(r["key_id"], r["name"], tuple(r["scopes"]), r["rate"], r["created_at"],
                      r["revoked_at"])
            for r in rows
        ]  # fmt: skip

    async def revoke(self, key_id: str, *, by: str | None = None) -> None:
        """Stop ``key_id`` working (within :data:`KEYS_TTL` in running processes); audited."""
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(queries.API_KEY_REVOKE, key_id) is None:
                raise NotFound(f"no active key {key_id!r}")
            await audit_log.record(
                conn, AuditRecord(actor=by or "unknown", action="key_revoke", subject=key_id)
            )

    async def required(self) -> bool:
        """Whether any key is active (then every non-open route needs one)."""
        now = self._clock()
        if self._active is None or self._active[0] <= now:
            active = bool(await self._pool.fetchval(queries.API_KEYS_ACTIVE))
            self._active = (now + KEYS_TTL.total_seconds(), active)
        return self._active[1]

    async def check(self, key: str) -> ApiKey | None:
        """The active key ``key`` is, or None (malformed, unknown, revoked, or wrong)."""
        key_id = key_id_of(key)
        if key_id is None:
            return None
        now = self._clock()
        cached = self._rows.get(key_id)
        if cached is None or cached[0] <= now:
            row = await self._pool.fetchrow(queries.API_KEY_BY_ID, key_id)
            found = None if row is None else ApiKey(
                row["key_id"], row["name"], tuple(row["scopes"]), row["rate"]
            )  # fmt: skip
            cached = (now + KEYS_TTL.total_seconds(), found, None if row is None else row["digest"])
            self._rows[key_id] = cached
        _, found, digest = cached
        if found is None or digest is None or not hmac.compare_digest(digest, digest_of(key)):
            return None
        return found


def has_scope(key: ApiKey, scope: Scope) -> bool:
    """``admin`` may do everything."""
    return scope in key.scopes or "admin" in key.scopes
