"""A/B bucketing: stable, evenly spread, and faithful to the arm weights."""

from __future__ import annotations

from collections import Counter

import mmh3
import pytest

from journeys.ab import BUCKETS, arm_index, assign, bucket
from journeys.plan.steps import Arm

USERS = [f"user-{number}" for number in range(20_000)]


def arms(*weights: int) -> list[Arm]:
    return [
        Arm(name=f"arm{index}", weight=weight, next=f"step{index}")
        for index, weight in enumerate(weights)
    ]


def test_bucket_is_unsigned_mmh3_of_salt_and_user_mod_buckets() -> None:
    assert bucket("welcome", "u1") == mmh3.hash("welcomeu1", signed=False) % BUCKETS
    assert all(0 <= bucket("s", user) < BUCKETS for user in USERS[:1000])


def test_assignment_is_stable_across_calls() -> None:
    split = arms(45, 45, 10)
    first = [assign(split, salt="welcome", user_id=user) for user in USERS[:500]]
    again = [assign(split, salt="welcome", user_id=user) for user in USERS[:500]]
    assert first == again


def test_distribution_follows_weights() -> None:
    split = arms(45, 45, 10)
    counts = Counter(assign(split, salt="welcome", user_id=user) for user in USERS)
    for index, weight in enumerate((45, 45, 10)):
        share = 100 * counts[index] / len(USERS)
        assert abs(share - weight) <= 1.5, (index, share)


def test_zero_weight_arm_gets_nobody() -> None:
    split = arms(50, 0, 50)
    counts = Counter(assign(split, salt="s", user_id=user) for user in USERS)
    assert counts[1] == 0
    assert counts[0] + counts[2] == len(USERS)


def test_changing_the_salt_reshuffles() -> None:
    split = arms(50, 50)
    users = USERS[:1000]
    old = [assign(split, salt="v1", user_id=user) for user in users]
    new = [assign(split, salt="v2", user_id=user) for user in users]
    moved = sum(before != after for before, after in zip(old, new, strict=True))
    # independent hashes move about half the users between two equal arms
    assert 350 < moved < 650


def test_the_salt_is_a_prefix_of_the_user_id() -> None:
    assert bucket("ab", "c") == bucket("a", "bc")


@pytest.mark.parametrize(
    ("bucket_number", "expected"),
    [(0, 0), (4499, 0), (4500, 1), (8999, 1), (9000, 2), (9999, 2)],
)
def test_boundary_buckets(bucket_number: int, expected: int) -> None:
    assert arm_index([45, 45, 10], bucket_number) == expected


def test_zero_weight_arm_owns_no_bucket() -> None:
    owners = {arm_index([30, 0, 70], number) for number in range(BUCKETS)}
    assert owners == {0, 2}
    assert arm_index([0, 100], 0) == 1
    assert arm_index([100, 0], BUCKETS - 1) == 0


@pytest.mark.parametrize(
    ("weights", "bucket_number", "message"),
    [
        ([45, 45], 0, "weights sum to 90, must be 100"),
        ([60, 60], 0, "weights sum to 120, must be 100"),
        ([110, -10], 0, "weights must not be negative, got [110, -10]"),
        ([50, 50], -1, "bucket -1 out of range 0-9999"),
        ([50, 50], BUCKETS, "bucket 10000 out of range 0-9999"),
    ],
)
def test_arm_index_rejects(weights: list[int], bucket_number: int, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        arm_index(weights, bucket_number)
    assert str(caught.value) == message
