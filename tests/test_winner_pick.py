"""The winning-path decision and its plan checks, without services."""

from __future__ import annotations

from typing import Any

import pytest

from journeys.arm_stats import ArmCounts, two_proportion_p
from journeys.plan.graph import arm_paths
from journeys.plan.validate import check_plan
from journeys.winner import in_test, pick_winner


def arms(*counts: tuple[str, bool, int, int]) -> list[ArmCounts]:
    return [ArmCounts(arm=a, control=c, users=u, converted=k) for a, c, u, k in counts]


def test_the_best_arm_wins_only_when_it_beats_the_runner_up_at_the_confidence() -> None:
    got = pick_winner(arms(("a", False, 100, 5), ("b", False, 100, 20)), min_confidence=0.95)
    assert (got.best, got.against, got.significant) == (1, 0, True)
    assert got.p_value == two_proportion_p(*arms(("b", False, 100, 20), ("a", False, 100, 5)))
    close = pick_winner(arms(("a", False, 100, 10), ("b", False, 100, 12)), min_confidence=0.95)
    assert (close.best, close.significant) == (1, False)
    assert close.p_value is not None and close.p_value > 0.05


def test_the_control_never_wins_and_a_lone_arm_is_tested_against_it() -> None:
    got = pick_winner(arms(("holdout", True, 100, 40), ("a", False, 100, 10)), min_confidence=0.95)
    assert (got.best, got.against, got.significant) == (1, 0, False)  # worse than holdout
    lone = pick_winner(arms(("holdout", True, 200, 4), ("a", False, 200, 30)), min_confidence=0.95)
    assert (lone.best, lone.against, lone.significant) == (1, 0, True)


def test_ties_and_empty_arms_win_nothing() -> None:
    tie = pick_winner(arms(("a", False, 50, 5), ("b", False, 50, 5)), min_confidence=0.9)
    assert tie.significant is False and tie.p_value is None
    empty = pick_winner(arms(("a", False, 0, 0), ("b", False, 0, 0)), min_confidence=0.9)
    assert empty.best is None and empty.significant is False


def test_the_test_share_is_a_stable_bucket_of_its_own() -> None:
    users = [f"u{n}" for n in range(4000)]
    share = sum(in_test("salt", u, share=20) for u in users) / len(users)
    assert 0.17 < share < 0.23
    assert [in_test("salt", u, share=20) for u in users[:50]] == [
        in_test("salt", u, share=20) for u in users[:50]
    ]


def _plan(entry: dict[str, Any], winner: dict[str, Any], *, goal: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "winner-check",
        "name": "w",
        "audience": {"source": "list", "name": "x"},
        "entry": entry,
        "steps": {
            "split": {
                "type": "ab_split",
                "arms": [
                    {"name": "holdout", "weight": 20, "control": True},
                    {"name": "a", "weight": 80, "next": "push"},
                ],
                "winner": winner,
            },
            "push": {"type": "send", "channel": "push", "template": "t"},
        },
    }
    if goal:
        body["goal"] = {"event": "order_placed", "within": "1d"}
    return body


@pytest.mark.parametrize(
    ("entry", "winner", "goal", "path", "reason"),
    [
        (
            {"type": "immediate"},
            {"metric": "conversion", "after": "1h"},
            False,
            "steps.split.ab_split.winner.metric",
            "conversion needs the plan's goal",
        ),
        (
            {"type": "event", "event": "signed_up"},
            {"metric": "click", "after": "1h", "test_share": 20},
            False,
            "steps.split.ab_split.winner.test_share",
            "holds back a blast's audience",
        ),
        (
            {"type": "immediate"},
            {"metric": "click", "after": "1h", "fallback": "holdout"},
            False,
            "steps.split.ab_split",
            "winner.fallback: the control arm receives nothing",
        ),
        (
            {"type": "immediate"},
            {"metric": "click", "after": "1h", "test_share": 100},
            False,
            "steps.split.ab_split.winner.test_share",
            "must be at most 99",
        ),
    ],
)
def test_winner_problems_name_the_field(
    entry: dict[str, Any], winner: dict[str, Any], goal: bool, path: str, reason: str
) -> None:
    _, problems = check_plan(_plan(entry, winner, goal=goal), channels=None)
    assert any(p.path == path and reason in p.reason for p in problems), problems


def test_an_arm_owns_only_the_steps_no_other_way_leads_to() -> None:
    steps: dict[str, dict[str, object]] = {
        "gate": {"type": "branch", "branches": [{"name": "vip", "next": "split"}], "else": "late"},
        "split": {"type": "ab_split"},
        "a1": {"type": "send", "next": "a2"},
        "a2": {"type": "send", "next": "late"},
        "b1": {"type": "send", "next": "both"},
        "both": {"type": "send"},
        "late": {"type": "send"},
    }
    steps["a2"]["next"] = "both"
    got = arm_paths(steps, {"a": "a1", "b": "b1", "holdout": None}, start="gate", split="split")
    # "both" is where a and b merge; "late" is reached around the split, from the branch
    assert got == {"a": {"a1", "a2"}, "b": {"b1"}, "holdout": set()}
