"""Scenes and instances checked against each other and the tag registry, every problem with
its path: tags exist, are published and of a kind the scene's calls carry, operators suit
the tag's type, enum values are declared, pass-through tags read a field the scene promises
(of a fitting type), experiments are allowed, and every decision satisfies the scene's JSON
Schema (checked with ``jsonschema``, Draft 2020-12).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pydantic import JsonValue

from journeys.decisions.model import Instance, Scene
from journeys.errors import Problem
from journeys.plan.rule_sites import RuleSite, rule_leaves
from journeys.plan.steps import DecideStep
from journeys.rules import (
    ENTRY_PREFIX,
    EventCondition,
    TagCondition,
)
from journeys.tags.check import RegisteredTag, site_tag_problems
from journeys.tags.model import FieldSource, TagKind

_FIELD_FITS = {"string": ("string", "enum"), "number": ("number",), "bool": ("bool",)}


def scene_problems(scene: Scene) -> list[Problem]:
    """What is wrong with a scene on its own: its decision schema must be a JSON Schema."""
    # jsonschema is imported where it is used: every CLI command and the worker import this
    # module through the plan store, and only checking a scene or instance needs it (~70 ms)
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(scene.decision_schema)
    except SchemaError as exc:
        where = ".".join(["decision_schema", *map(str, exc.path)])
        return [Problem(where, f"not a JSON Schema: {exc.message}"[:300])]
    return []


def tag_kinds(scene: Scene) -> tuple[TagKind, ...]:
    """The kinds of tags a scene's rules may read: those of the ids its calls carry, and
    pass-through fields when it promises any."""
    return (*scene.keys, *(("custom",) if scene.fields else ()))


def instance_problems(
    instance: Instance,
    scene: Scene,
    registry: Mapping[str, RegisteredTag],
    *,
    allow_disabled: bool = False,
) -> list[Problem]:
    """What is wrong with ``instance`` under ``scene``; ``registry`` holds at least the tags
    its rules read (:func:`instance_tags`)."""
    problems: list[Problem] = []
    if instance.scene != scene.scene:
        problems.append(Problem("scene", f"is {instance.scene!r}, checked against {scene.scene!r}"))
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(scene.decision_schema)
    for path, decision in _decisions(instance):
        problems += [
            Problem(".".join([path, *map(str, error.path)]), f"decision {error.message}"[:300])
            for error in validator.iter_errors(decision)
        ]
    sites: list[RuleSite] = []
    for index, strategy in enumerate(instance.strategies):
        where = f"strategies.{index}"
        if strategy.experiment is not None and not scene.ab:
            problems.append(
                Problem(f"{where}.experiment", f"scene {scene.scene} allows no A/B experiments")
            )
        if strategy.rule is None:
            continue
        sites.append(RuleSite(f"{where}.rule", strategy.rule, segment=False))
        for path, leaf in rule_leaves(strategy.rule, f"{where}.rule"):
            if isinstance(leaf, EventCondition):
                reason = "a decision rule reads tags; count a behaviour with an aggregate tag"
                problems.append(Problem(f"{path}.event", reason))
            elif leaf.tag.startswith(ENTRY_PREFIX):
                reason = "decisions have no entry event; read a call's field with a custom tag"
                problems.append(Problem(f"{path}.tag", reason))
            else:
                problems += _field_problems(path, leaf, registry.get(leaf.tag), scene)
    carried = ", ".join(tag_kinds(scene))
    problems += site_tag_problems(
        sites,
        registry,
        allow_disabled=allow_disabled,
        kinds=tag_kinds(scene),
        kinds_why=f"scene {scene.scene}'s calls carry {carried} only",
    )
    return problems


def decide_step_problems(path: str, step: DecideStep, scene: Scene) -> list[Problem]:
    """What a plan's ``decide`` step at ``path`` lacks for its instance's scene: a journey
    knows its users only, so the scene's calls must carry user ids alone, and the step gives
    every field the scene promises (a constant or an entry property) and no other."""
    problems: list[Problem] = []
    if scene.keys != ["user"]:
        reason = (
            f"scene {scene.scene}'s calls carry {', '.join(scene.keys)} ids; a journey has "
            "its users' only"
        )
        problems.append(Problem(f"{path}.instance", reason))
    for name in sorted(set(scene.fields) - set(step.fields)):
        problems.append(Problem(f"{path}.fields", f"scene {scene.scene} needs field {name}"))
    for name in sorted(set(step.fields) - set(scene.fields)):
        problems.append(Problem(f"{path}.fields.{name}", f"not a field of scene {scene.scene}"))
    return problems


def instance_tags(instance: Instance) -> list[str]:
    """The registry tags the instance's rules read, sorted."""
    names = {
        leaf.tag
        for strategy in instance.strategies
        if strategy.rule is not None
        for _, leaf in rule_leaves(strategy.rule, "")
        if isinstance(leaf, TagCondition) and not leaf.tag.startswith(ENTRY_PREFIX)
    }
    return sorted(names)


def _field_problems(
    path: str, leaf: TagCondition, tag: RegisteredTag | None, scene: Scene
) -> list[Problem]:
    """A pass-through tag must read a field the scene promises, of a type that fits."""
    if tag is None or tag.live is None or not isinstance(tag.live.source, FieldSource):
        return []
    field = tag.live.source.field
    promised = scene.fields.get(field)
    if promised is None:
        reason = f'tag "{leaf.tag}" reads field {field}, which scene {scene.scene} does not send'
        return [Problem(f"{path}.tag", reason)]
    if tag.live.type not in _FIELD_FITS[promised]:
        reason = f'tag "{leaf.tag}" is {tag.live.type}; the scene sends {field} as {promised}'
        return [Problem(f"{path}.tag", reason)]
    return []


def _decisions(instance: Instance) -> Iterator[tuple[str, JsonValue]]:
    yield "default", instance.default
    for index, strategy in enumerate(instance.strategies):
        where = f"strategies.{index}"
        if strategy.experiment is None:
            yield f"{where}.decision", strategy.decision
            continue
        for number, group in enumerate(strategy.experiment.groups):
            yield f"{where}.experiment.groups.{number}.decision", group.decision
