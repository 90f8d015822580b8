"""Each user's path through a plan, read back from the cohort ids a run left in Redis.

A cohort id is ``{parent id}>{node}.{route}``: its members stood at ``node`` and left it by
``route``. Waits hand their cohort on under the same id, so the nodes between two segments
(and after the last) are found by walking the plan's single ``next`` edges of the hold nodes
(``wait``, ``wait_until``). The users of a run's cohorts are snapshotted just before the run
deletes its keys (see :mod:`tests.journey_runner`).
"""

from __future__ import annotations

from journeys.plan.models import Plan
from journeys.plan.steps import (
    AbSplitStep,
    BranchStep,
    CheckStep,
    DecideStep,
    SendStep,
    UpdateStep,
    WaitForEventStep,
    WaitStep,
    WaitUntilStep,
    WebhookStep,
)
from journeys.route_names import parse_route

NOT_COHORTS = ("caught",)
"""Routes of sets that are not cohorts (everyone caught so far at a wait)."""


def _holds(plan: Plan, node: str | None) -> list[str]:
    """``node`` and the nodes after it while each is a hold (its users all move on). A
    ``wait_until`` in users' own zones first routes its users by zone, so it is followed only
    through its zone segments."""
    walked: list[str] = []
    while node is not None and node not in walked:
        walked.append(node)
        step = plan.steps[node]
        plain_wait_until = isinstance(step, WaitUntilStep) and step.timezone != "user"
        if not (isinstance(step, WaitStep) or plain_wait_until):
            break
        assert isinstance(step, WaitStep | WaitUntilStep)
        node = step.next
    return walked


def _after(plan: Plan, node: str, route: str) -> str | None:
    """Where the users that left ``node`` by ``route`` went (None: their journey ended)."""
    step = plan.steps[node]
    if _is_retry(route):
        return node  # a retry pass of the same send
    if isinstance(step, SendStep | WebhookStep):
        return step.next
    if isinstance(step, WaitForEventStep):
        return step.on_timeout if route == "timeout" else step.on_event
    if isinstance(step, WaitUntilStep):
        return step.next  # a zone's cohort waits at the node, then goes on with its id
    decoded = parse_route(route)
    if isinstance(step, CheckStep) and decoded.kind == "failed":
        return step.on_failure
    if isinstance(step, BranchStep | DecideStep | CheckStep):
        return step.else_ if decoded.kind == "else" else step.branches[decoded.index].next
    if isinstance(step, AbSplitStep):
        # held for the winner: they wait at the split, then leave it by the winner's arm
        return node if decoded.kind == "hold" else step.arms[decoded.index].next
    assert isinstance(step, UpdateStep), step.type
    return step.next


def _is_retry(route: str) -> bool:
    return route[:1] == "r" and route[1:].isdigit()


def trace(plan: Plan, cohort_id: str, *, finished: bool) -> list[str]:
    """The nodes the members of ``cohort_id`` reached, in order; with ``finished`` (the run
    ended), the holds they stood at are followed to where the users went after them."""
    path: list[str] = []
    node: str | None = plan.start_step
    for segment in cohort_id.split(">")[1:]:
        at, route = segment.split(".", 1)
        walked = _holds(plan, node)
        path += walked[: walked.index(at)] if at in walked else walked
        path.append(at)
        node = _after(plan, at, route)
    if node is not None:
        path += _holds(plan, node) if finished else [node]
    return [n for i, n in enumerate(path) if i == 0 or path[i - 1] != n]


def deepest(cohort_ids: list[str]) -> str:
    """The id a user went furthest in: most segments, a passed cohort before a retry set."""

    def depth(cohort_id: str) -> tuple[int, bool]:
        last = cohort_id.rsplit(">", 1)[-1].split(".", 1)[-1]
        return cohort_id.count(">"), not _is_retry(last)

    return max(sorted(cohort_ids), key=depth)
