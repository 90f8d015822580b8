"""Scene and instance files: every problem at once with its path, and the engine's choice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from journeys.ab import bucket
from journeys.decisions.check import instance_problems, scene_problems
from journeys.decisions.engine import decide
from journeys.decisions.model import Instance, Scene, check_decision_file
from journeys.plan.steps import Step
from journeys.tags.check import RegisteredTag
from journeys.tags.model import TagDefinition

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "decisions"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def tag(name: str, state: str = "published", **definition: Any) -> RegisteredTag:
    return RegisteredTag(
        name=name,
        state=state,  # type: ignore[arg-type]
        live=TagDefinition.model_validate(definition),
        live_version=1,
    )


REGISTRY = {
    "risk_level": tag("risk_level", type="enum", values=["low", "medium", "high"]),
    "credit_limit": tag("credit_limit", type="number"),
    "channel": tag("channel", type="string", source={"field": "channel"}),
    "old_flag": tag("old_flag", "disabled", type="bool"),
    "sku_brand": tag("sku_brand", type="string", kind="item"),
    "region": tag("region", type="string", source={"field": "region"}),
    "amount_tag": tag("amount_tag", type="string", source={"field": "amount"}),
}


def example(name: str) -> Any:
    model, problems = check_decision_file(yaml.safe_load((EXAMPLES / name).read_text()))
    assert not problems, problems
    return model


def test_the_examples_are_valid_together() -> None:
    scene, instance = example("payment.scene.yaml"), example("checkout-instalments.yaml")
    assert isinstance(scene, Scene) and isinstance(instance, Instance)
    assert scene_problems(scene) == []
    assert instance_problems(instance, scene, REGISTRY) == []


def test_every_problem_of_an_instance_is_named_with_its_path() -> None:
    scene = example("payment.scene.yaml")
    body = {
        "instance": "broken",
        "scene": "payment",
        "default": {"instalments": 2},  # not in the schema's enum
        "strategies": [
            {"name": "a", "rule": {"tag": "nosuch", "op": "eq", "value": 1}, "decision": {}},
            {"name": "b", "rule": {"tag": "risk_level", "op": "gt", "value": 3},
             "decision": {"instalments": 3}},
            {"name": "c", "rule": {"tag": "risk_level", "op": "eq", "value": "tiny"},
             "decision": {"instalments": 3, "colour": "red"}},
            {"name": "d", "rule": {"any": [{"tag": "old_flag", "op": "eq", "value": True},
                                           {"event": "order_paid"}]},
             "decision": {"instalments": 3}},
            {"name": "e", "rule": {"all": [{"tag": "sku_brand", "op": "eq", "value": "x"},
                                           {"tag": "region", "op": "eq", "value": "north"},
                                           {"tag": "amount_tag", "op": "eq", "value": "1"}]},
             "decision": {"instalments": 3}},
        ],
    }  # fmt: skip
    instance, problems = check_decision_file(body)
    assert problems == [] and isinstance(instance, Instance)
    found = {str(p) for p in instance_problems(instance, scene, REGISTRY)}
    assert found == {
        "default.instalments: decision 2 is not one of [1, 3, 6, 12]",
        "strategies.0.decision: decision 'instalments' is a required property",
        'strategies.0.rule.tag: tag "nosuch" is not in the registry (journeys tags define)',
        "strategies.1.rule.op: op gt does not suit an enum tag (use eq, ne, in, not_in, exists)",
        "strategies.2.decision: decision Additional properties are not allowed ('colour' was "
        "unexpected)",
        'strategies.2.rule.value: "tiny" is not one of the declared values: low, medium, high',
        'strategies.3.rule.any.0.tag: tag "old_flag" is disabled: only plan versions that '
        "already use it may",
        "strategies.3.rule.any.1.event: a decision rule reads tags; count a behaviour with an "
        "aggregate tag",
        'strategies.4.rule.all.0.tag: tag "sku_brand" is an item tag: scene payment\'s calls '
        "carry user, custom only",
        'strategies.4.rule.all.1.tag: tag "region" reads field region, which scene payment '
        "does not send",
        'strategies.4.rule.all.2.tag: tag "amount_tag" is string; the scene sends amount as number',
    }
    # a version that already read the disabled tag keeps working (a rollback, a scene change)
    kept = {str(p) for p in instance_problems(instance, scene, REGISTRY, allow_disabled=True)}
    assert not any("old_flag" in p for p in kept)


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"strategies": [{"name": "x", "experiment": {"groups": [
            {"name": "a", "share": 60, "decision": 1}, {"name": "b", "share": 35, "decision": 2},
        ]}}]}, "strategies.0.experiment", "group shares sum to 95, must be 100"),
        ({"strategies": [{"name": "x", "decision": 1, "experiment": {"groups": [
            {"name": "a", "share": 50, "decision": 1}, {"name": "b", "share": 50, "decision": 2},
        ]}}]}, "strategies.0", "a strategy has a decision or an experiment, one of them"),
        ({"strategies": [{"name": "x", "decision": 1}, {"name": "x", "decision": 2}]},
         "strategies", "strategy names must be unique: x"),
        ({"strategies": [{"name": "x", "experiment": {"groups": [
            {"name": "a", "share": 50, "decision": 1, "control": True},
            {"name": "b", "share": 50, "decision": 2, "control": True},
        ]}}]}, "strategies.0.experiment", "at most one group is the control"),
        ({"instance": "Bad Id"}, "instance", 'bad instance id "Bad Id"'),
    ],
)  # fmt: skip
def test_instance_shapes_are_refused_with_their_path(
    change: dict[str, Any], path: str, reason: str
) -> None:
    body = {"instance": "i", "scene": "payment", "default": 1, **change}
    model, problems = check_decision_file(body)
    assert model is None
    assert any(p.path == path and reason in p.reason for p in problems), problems


def test_a_scene_without_ab_refuses_experiments_and_a_bad_schema_is_named() -> None:
    scene = Scene.model_validate(
        {"scene": "slots", "ab": False, "decision_schema": {"type": "object"}}
    )
    instance = example("checkout-instalments.yaml").model_copy(update={"scene": "slots"})
    found = {str(p) for p in instance_problems(instance, scene, REGISTRY)}
    assert "strategies.1.experiment: scene slots allows no A/B experiments" in found
    bad = Scene.model_validate({"scene": "s", "decision_schema": {"type": "integr"}})
    assert [p.path for p in scene_problems(bad)] == ["decision_schema.type"]


def test_the_first_strategy_whose_rule_holds_decides_and_groups_are_stable() -> None:
    instance = example("checkout-instalments.yaml")
    salt = "instalments-2026-12"
    low = {"risk_level": "low", "channel": "app"}
    groups: dict[str | None, int] = {}
    for n in range(2_000):
        user = f"u{n}"
        got = decide(instance, values=low, key=user, now=NOW)
        assert got.strategy == "low-risk"
        assert got.group == ("control" if bucket(salt, user) < 5_000 else "test")
        assert got.decision == ({"instalments": 3} if got.group == "control"
                                else {"instalments": 6, "interest_free": True})  # fmt: skip
        assert decide(instance, values=low, key=user, now=NOW) == got  # the same every time
        groups[got.group] = groups.get(got.group, 0) + 1
    assert set(groups) == {"control", "test"}
    # the mini program comes first, whatever the risk
    mini = decide(instance, values={**low, "channel": "mini-program"}, key="u1", now=NOW)
    assert (mini.strategy, mini.group, mini.decision) == ("mini-program", None, {"instalments": 1})
    # no rule holds: the default, and the explanation says why
    high = decide(instance, values={"risk_level": "high"}, key="u1", now=NOW, explain=True)
    assert (high.strategy, high.decision) == (None, {"instalments": 1})
    assert high.explain is not None
    assert [(s.strategy, s.holds) for s in high.explain] == [
        ("mini-program", False), ("low-risk", False), ("medium-risk", False)
    ]  # fmt: skip
    assert high.explain[1].conditions[0].model_dump() == {
        "path": "rule", "tag": "risk_level", "op": "eq", "operand": "low", "value": "high",
        "holds": False,
    }  # fmt: skip


@pytest.mark.parametrize(
    "step",
    [
        {"type": "decide", "instance": "i", "branches": [{"name": "a", "when": 1},
                                                           {"name": "a", "when": 2}]},
        {"type": "check", "service": "risk", "branches": [{"name": "a", "when": "x"},
                                                            {"name": "a", "when": "y"}]},
    ],
)  # fmt: skip
def test_decide_and_check_branches_are_named_once(step: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="branch names must be unique, repeated: a"):
        TypeAdapter(Step).validate_python(step)
