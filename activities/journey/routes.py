"""Per-user decisions of the routing nodes: which way each user of a page goes, under the
route names of :mod:`journeys.route_names`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from journeys.ab import arm_index, bucket
from journeys.plan.steps import AbSplitStep, BranchStep
from journeys.route_names import ELSE, HOLD, arm_route, branch_route, zone_route
from journeys.rule_eval import UserFacts, evaluate
from journeys.schedule import zone_or
from journeys.winner import in_test


def branch(
    step: BranchStep, users: Sequence[str], facts: Mapping[str, UserFacts], *, now: datetime
) -> dict[str, list[str]]:
    """First matching branch wins; users matching none go to ``else``."""
    routes: dict[str, list[str]] = defaultdict(list)
    for user in users:
        for index, way in enumerate(step.branches):
            if evaluate(way.rule, facts[user], now=now):
                routes[branch_route(index)].append(user)
                break
        else:
            routes[ELSE].append(user)
    return dict(routes)


@dataclass(frozen=True)
class Assignment:
    """One user's arm, as the assignments table records it."""

    user_id: str
    arm: str
    control: bool
    bucket: int
    by_winner: bool = False


def split(
    step: AbSplitStep,
    users: Sequence[str],
    *,
    winner_arm: int | None = None,
    test_share: int | None = None,
) -> tuple[dict[str, list[str]], list[Assignment]]:
    """Arms by ``mmh3(salt + user_id) mod 10000`` over the cumulative weights. With a decided
    ``winner_arm`` everyone goes there; with a ``test_share`` (a winning path, undecided)
    only that percent is split and the others wait on the ``hold`` route, unassigned."""
    salt = step.salt or ""
    weights = [arm.weight for arm in step.arms]
    routes: dict[str, list[str]] = defaultdict(list)
    assignments: list[Assignment] = []
    for user in users:
        b = bucket(salt, user)
        if winner_arm is not None:
            arm = step.arms[winner_arm]
            routes[arm_route(winner_arm)].append(user)
            assignments.append(Assignment(user, arm.name, arm.control, b, by_winner=True))
            continue
        if test_share is not None and not in_test(salt, user, share=test_share):
            routes[HOLD].append(user)
            continue
        index = arm_index(weights, b)
        arm = step.arms[index]
        routes[arm_route(index)].append(user)
        assignments.append(Assignment(user, arm.name, arm.control, b))
    return dict(routes), assignments


def zones(
    users: Sequence[str], facts: Mapping[str, UserFacts], *, fallback: str
) -> dict[str, list[str]]:
    """Users by their profile's time zone (``fallback`` when missing or unknown)."""
    routes: dict[str, list[str]] = defaultdict(list)
    for user in users:
        zone = facts[user].attrs.get("timezone")
        routes[zone_route(zone_or(zone if isinstance(zone, str) else None, fallback))].append(user)
    return dict(routes)


def same_json(when: object, value: object) -> bool:
    """Whether a branch's ``when`` matches a decision or an answer, as JSON values compare:
    true is not 1, 3 is 3.0."""
    if isinstance(when, bool) or isinstance(value, bool):
        return isinstance(when, bool) and isinstance(value, bool) and when == value
    return when == value
