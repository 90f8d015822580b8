"""API keys: their form, their scopes, and which scope each HTTP route asks for.

A key reads ``jk_<id>_<secret>``: the id names it (it is shown in lists and logs), the whole
key is checked against its SHA-256 digest, the only thing stored. Keys are required once any
key is active (none: the API is open, as on a fresh embedded stack).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Literal, get_args

Scope = Literal["events:write", "decide", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)
OPEN_PATHS = frozenset({"/healthz", "/metrics", "/openapi.json", "/docs", "/redoc"})
_KEY = re.compile(r"jk_([0-9a-f]{8})_[A-Za-z0-9_-]{20,64}")


def scope_for(path: str) -> Scope | None:
    """The scope a route asks for; None for the open ones (health, metrics, schema)."""
    if path in OPEN_PATHS:
        return None
    if path == "/v1/decide":
        return "decide"
    if path.startswith("/v1/suppressions") or path.endswith("/approval"):
        return "admin"
    return "events:write"  # events, API entries, inbox reads and clicks, and anything else


def new_key() -> tuple[str, str]:
    """A fresh key and its id."""
    key_id = secrets.token_hex(4)
    return f"jk_{key_id}_{secrets.token_urlsafe(24)}", f"jk_{key_id}"


def key_id_of(key: str) -> str | None:
    """The id of a well-formed key, else None."""
    match = _KEY.fullmatch(key)
    return f"jk_{match.group(1)}" if match else None


def digest_of(key: str) -> str:
    """What is stored of a key."""
    return hashlib.sha256(key.encode()).hexdigest()
