"""The audit log's vocabulary: what can be recorded, and who is doing it.

Every operator action that changes what is sent or who may act (publishing, approving,
launching, pausing, resuming, cancelling, changing a rate, suppressing, keys) appends one
row to ``audit_log``, which refuses updates and deletes. The CLI acts as ``--by``, else
``JOURNEYS_ACTOR``, else the login name: a declared name, since whoever holds the database
credentials is trusted. Over the HTTP API the actor is the API key (``key:<name>``).
"""

from __future__ import annotations

import getpass
import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from journeys.errors import InvalidInput, Problem

AuditAction = Literal[
    "publish",
    "approve",
    "launch",
    "schedule",
    "pause",
    "resume",
    "cancel",
    "rate",
    "suppress",
    "unsuppress",
    "key_create",
    "key_revoke",
]
MAX_ACTOR_CHARS = 200
MAX_USERS_LISTED = 100
"""A suppression's entry names this many of its users (and counts them all)."""
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]+")


class AuditRecord(BaseModel):
    """One action to append: who, what, on which plan or run, and its particulars."""

    actor: str
    action: AuditAction
    plan_id: str | None = None
    version: int | None = None
    run_id: str | None = None
    subject: str | None = None
    """What else it acted on: a channel, a key id, a list of users' size."""
    detail: dict[str, JsonValue] = Field(default_factory=dict)


class AuditEntry(AuditRecord):
    """A row of the log."""

    id: int
    at: datetime


def actor_name(by: str | None, *, configured: str | None) -> str:
    """Who a CLI command acts as: ``by``, else ``configured`` (``JOURNEYS_ACTOR``), else the
    login name; refuses an empty name, control characters or more than 200 characters."""
    name = by if by is not None else configured
    if name is None:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no login name (a container's uid without a passwd entry)
            name = "unknown"
    name = name.strip()
    if not name or len(name) > MAX_ACTOR_CHARS or not _PRINTABLE.fullmatch(name):
        reason = f"a name of 1 to {MAX_ACTOR_CHARS} printable characters"
        raise InvalidInput("actor", [Problem("--by", reason)])
    return name


def key_actor(name: str) -> str:
    """How an API key appears as an actor."""
    return f"key:{name}"
