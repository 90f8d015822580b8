"""A/B bucketing: which arm of an ``ab_split`` step a user lands in.

A user's bucket is ``mmh3(salt + user_id) mod 10000`` (unsigned 32-bit MurmurHash3, seed 0), so
the assignment depends only on the salt and the user id: it is the same in every process, run
and plan version. Arms take consecutive slices of the buckets in the order they are listed, one
slice of 100 buckets per percent of weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from typing import TYPE_CHECKING

import mmh3

if TYPE_CHECKING:
    from journeys.plan.steps import Arm

BUCKETS = 10_000
"""Buckets per split; 100 per percent of weight."""

_PER_PERCENT = BUCKETS // 100


def bucket(salt: str, user_id: str) -> int:
    """The user's bucket in ``range(BUCKETS)`` for a split salted with ``salt``."""
    # unsigned, so the remainder is never negative and matches other mmh3 implementations
    return int(mmh3.hash(salt + user_id, signed=False)) % BUCKETS


def arm_index(weights: Sequence[int], bucket: int) -> int:
    """The index of the arm that owns ``bucket``, given arm weights in percent.

    Arm ``i`` owns buckets ``[100 * cum_i, 100 * cum_{i+1})`` where ``cum_i`` is the sum of the
    weights before it, so a zero-weight arm owns nothing. Raise ``ValueError`` if a weight is
    negative, the weights do not sum to 100, or ``bucket`` is outside ``range(BUCKETS)``.
    """
    if any(weight < 0 for weight in weights):
        raise ValueError(f"weights must not be negative, got {list(weights)}")
    if sum(weights) != 100:
        raise ValueError(f"weights sum to {sum(weights)}, must be 100")
    if not 0 <= bucket < BUCKETS:
        raise ValueError(f"bucket {bucket} out of range 0-{BUCKETS - 1}")
    for index, upper in enumerate(accumulate(weights)):
        if bucket < upper * _PER_PERCENT:
            return index
    raise AssertionError("unreachable: the last upper bound is BUCKETS")


def assign(arms: Sequence[Arm], *, salt: str, user_id: str) -> int:
    """The index in ``arms`` of the arm ``user_id`` is assigned to under ``salt``.

    The caller picks the salt: the step's ``salt``, or the plan id when the step has none.
    """
    return arm_index([arm.weight for arm in arms], bucket(salt, user_id))
