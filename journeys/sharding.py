"""Which shard a user lands on: the same index in every audience and every run."""

from __future__ import annotations

import mmh3

DEFAULT_SHARDS = 16
MAX_SHARDS = 1024


def is_valid_shard_count(shards: int) -> bool:
    """A power of two from 1 to MAX_SHARDS."""
    return 1 <= shards <= MAX_SHARDS and shards & (shards - 1) == 0


def shard_of(user_id: str, shards: int) -> int:
    """``mmh3(user_id) & (shards - 1)``: stable across processes (unlike ``hash()``)."""
    return int(mmh3.hash(user_id, signed=False)) & (shards - 1)
