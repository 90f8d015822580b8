"""Deciding, given the tag values: the first strategy whose rule holds, then its group.

Pure (no I/O): the runtime (:mod:`starter.decisions.service`) gathers the values and records
what was decided. Rules are evaluated by :func:`journeys.rule_eval.evaluate`, the same code
every journey's branches use; A/B groups are drawn by :func:`journeys.ab.bucket`, the same
``mmh3(salt + key) mod 10000`` as a journey's ``ab_split``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, JsonValue

from journeys.ab import arm_index, bucket
from journeys.decisions.model import Instance, Strategy
from journeys.plan.rule_sites import rule_leaves
from journeys.rule_eval import UserFacts, evaluate
from journeys.rules import Rule, TagCondition


class LeafExplained(BaseModel):
    """One condition of a rule, the value it read and whether it held."""

    path: str
    tag: str
    op: str
    operand: JsonValue
    value: JsonValue
    holds: bool


class StrategyExplained(BaseModel):
    """Whether a strategy's rule held, and why; strategies after the one chosen are not
    evaluated."""

    strategy: str
    holds: bool
    conditions: list[LeafExplained]


class Decided(BaseModel):
    """What the engine decided for one call."""

    decision: JsonValue
    strategy: str | None
    """None: no strategy's rule held (the instance's default)."""
    group: str | None
    control: bool = False
    bucket: int | None = None
    explain: list[StrategyExplained] | None = None


def decide(
    instance: Instance,
    *,
    values: Mapping[str, Any],
    key: str,
    now: datetime,
    explain: bool = False,
) -> Decided:
    """Decide for a caller whose tags have ``values`` (tag name -> value; absent: no value),
    drawing A/B groups by ``key`` (the id of the scene's first key)."""
    facts = UserFacts(attrs=values)
    explained: list[StrategyExplained] = []
    for strategy in instance.strategies:
        holds = strategy.rule is None or evaluate(strategy.rule, facts, now=now)
        if explain:
            explained.append(_explain(strategy, facts, now=now, holds=holds))
        if holds:
            return _chosen(instance, strategy, key, explained if explain else None)
    return Decided(
        decision=instance.default,
        strategy=None,
        group=None,
        explain=explained if explain else None,
    )


def _chosen(
    instance: Instance, strategy: Strategy, key: str, explained: list[StrategyExplained] | None
) -> Decided:
    if strategy.experiment is None:
        return Decided(decision=strategy.decision, strategy=strategy.name, group=None,
                       explain=explained)  # fmt: skip
    groups = strategy.experiment.groups
    drawn = bucket(instance.salt(strategy), key)
    group = groups[arm_index([g.share for g in groups], drawn)]
    return Decided(
        decision=group.decision,
        strategy=strategy.name,
        group=group.name,
        control=group.control,
        bucket=drawn,
        explain=explained,
    )


def _explain(
    strategy: Strategy, facts: UserFacts, *, now: datetime, holds: bool
) -> StrategyExplained:
    conditions: list[LeafExplained] = []
    rule: Rule | None = strategy.rule
    for path, leaf in rule_leaves(rule, "rule") if rule is not None else ():
        assert isinstance(leaf, TagCondition)  # decision rules are checked to read tags only
        conditions.append(
            LeafExplained(
                path=path,
                tag=leaf.tag,
                op=leaf.op,
                operand=leaf.model_dump(mode="json")["value"],
                value=_json(facts.attrs.get(leaf.tag)),
                holds=evaluate(leaf, facts, now=now),
            )
        )
    return StrategyExplained(strategy=strategy.name, holds=holds, conditions=conditions)


def _json(value: Any) -> JsonValue:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_json(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return str(value)
