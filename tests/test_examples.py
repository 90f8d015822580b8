"""The example plans: one per seed scenario, all valid, together using every step kind."""

from __future__ import annotations

from datetime import time
from functools import cache
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import jinja2
import pytest
from jinja2 import nodes

from journeys.channels_config import ChannelsFile, Template, load_channels
from journeys.errors import PlanInvalid
from journeys.plan.common import PlanModel
from journeys.plan.entry import AtEntry, EventEntry
from journeys.plan.models import Plan
from journeys.plan.rule_sites import plan_tags
from journeys.plan.steps import (
    STEP_TYPES,
    AbSplitStep,
    BranchStep,
    CheckStep,
    SendStep,
    Step,
    UpdateStep,
    WaitForEventStep,
    WaitUntilStep,
    WebhookStep,
)
from journeys.plan.validate import load_plan
from journeys.rules import TagCondition, iter_conditions
from journeys.tags.check import RegisteredTag, rule_tag_problems
from journeys.tags.model import load_tags_file
from starter.plan_files import NOT_PLANS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CHANNELS_FILE = EXAMPLES / "channels.yaml"
S = TypeVar("S", bound=PlanModel)

# the plan file of each seed scenario (../shared/seeds/DIGEST.md)
SEED_PLANS = {
    "000": "cancelled-order-recall",
    "001": "weekly-digest",
    "002": "member-day",
    "003": "tonight-popup-ab",
    "004": "instalments-ab",
}


def example_paths() -> list[Path]:
    return sorted(path for path in EXAMPLES.glob("*.y*ml") if path.name not in NOT_PLANS)


@cache
def channels() -> ChannelsFile:
    return load_channels(CHANNELS_FILE)


@cache
def example(stem: str) -> Plan:
    path = EXAMPLES / f"{stem}.yaml"
    try:
        return load_plan(path, channels=channels())
    except PlanInvalid as exc:
        pytest.fail(str(exc))


def all_examples() -> list[Plan]:
    return [example(path.stem) for path in example_paths()]


def steps_of(plan: Plan, kind: type[S]) -> list[S]:
    return [step for step in plan.steps.values() if isinstance(step, kind)]


def tag_values(step: BranchStep, tag: str) -> set[object]:
    """Every value a branch compares ``tag`` with (``eq`` and ``in`` conditions)."""
    found: set[object] = set()
    for branch in step.branches:
        for leaf in iter_conditions(branch.rule):
            if isinstance(leaf, TagCondition) and leaf.tag == tag:
                values = leaf.value if isinstance(leaf.value, list) else [leaf.value]
                found.update(values)
    return found


# --- every example -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", example_paths(), ids=lambda path: path.name)
def test_example_is_valid_against_the_example_channels(path: Path) -> None:
    try:
        plan = load_plan(path, channels=channels())
    except PlanInvalid as exc:
        pytest.fail(str(exc))
    assert plan.id == path.stem
    assert path.read_text().startswith("#"), "every example starts with a comment saying why"


def test_every_seed_scenario_has_its_example() -> None:
    stems = {path.stem for path in example_paths()}
    assert set(SEED_PLANS.values()) <= stems
    for seed, stem in SEED_PLANS.items():
        first_line = (EXAMPLES / f"{stem}.yaml").read_text().splitlines()[0]
        assert first_line.startswith(f"# Seed {seed}"), stem


def test_the_examples_use_every_step_kind() -> None:
    used = {step.type for plan in all_examples() for step in plan.steps.values()}
    assert used == set(STEP_TYPES)


def test_the_examples_use_goals_exit_criteria_and_every_entry_kind() -> None:
    plans = all_examples()
    assert {plan.entry.type for plan in plans} == {"immediate", "at", "schedule", "event", "api"}
    criteria = [criterion for plan in plans for criterion in plan.exit_criteria]
    assert any(criterion.event is not None for criterion in criteria)
    assert any(criterion.rule is not None for criterion in criteria)
    assert all(plan.goal is not None for plan in plans if plan.id in SEED_PLANS.values())
    assert any(
        arm.control for plan in plans for split in steps_of(plan, AbSplitStep) for arm in split.arms
    )
    assert any(
        wait.match_entry is not None for plan in plans for wait in steps_of(plan, WaitForEventStep)
    )


def test_a_user_time_zone_wait_exists() -> None:
    waits = [wait for plan in all_examples() for wait in steps_of(plan, WaitUntilStep)]
    assert any(
        wait.timezone == "user" and wait.time == time(9) and wait.fallback_timezone is not None
        for wait in waits
    )


def _vars_read(text: str) -> set[str]:
    tree = jinja2.Environment().parse(text)
    found = {
        node.attr
        for node in tree.find_all(nodes.Getattr)
        if isinstance(node.node, nodes.Name) and node.node.name == "vars"
    }
    found |= {
        str(node.arg.value)
        for node in tree.find_all(nodes.Getitem)
        if isinstance(node.node, nodes.Name)
        and node.node.name == "vars"
        and isinstance(node.arg, nodes.Const)
    }
    return found


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _template_texts(template: Template) -> list[str]:
    """Every Jinja string of a template, the payload's strings included."""
    return _strings(template.model_dump(exclude_none=True))


@pytest.mark.parametrize("path", example_paths(), ids=lambda path: path.name)
def test_each_step_gives_the_vars_its_template_reads(path: Path) -> None:
    plan = example(path.stem)
    for step_id, step in plan.steps.items():
        if not isinstance(step, SendStep | WebhookStep):
            continue
        template = channels().channels[step.channel].templates[step.template]
        wanted = set().union(*(_vars_read(text) for text in _template_texts(template)))
        missing = wanted - set(step.vars)
        assert not missing, f"{step_id}: {step.channel}/{step.template} reads vars {missing}"


# --- the seed scenarios --------------------------------------------------------------------------


def test_seed_000_cancelled_order_recall() -> None:
    plan = example(SEED_PLANS["000"])
    assert isinstance(plan.entry, EventEntry) and plan.entry.event == "order_cancelled"
    (why,) = steps_of(plan, BranchStep)
    assert tag_values(why, "entry.reason") == {"price_too_low", "data_wipe_hassle", "dont_trust"}
    assert why.else_ is not None

    def first_step(name: str) -> Step:
        branch = next(branch for branch in why.branches if branch.name == name)
        assert branch.next is not None
        return plan.steps[branch.next]

    def kind(step: SendStep | WebhookStep) -> str:
        return channels().channels[step.channel].type

    coupon = first_step("price_too_low")
    assert isinstance(coupon, WebhookStep) and kind(coupon) == "webhook"
    assert coupon.next is not None
    told = plan.steps[coupon.next]
    assert isinstance(told, SendStep) and kind(told) in ("push", "sms")
    tutorial = first_step("data_wipe_hassle")
    assert isinstance(tutorial, SendStep) and kind(tutorial) == "in_app"
    call = first_step("dont_trust")
    assert isinstance(call, WebhookStep) and kind(call) == "webhook"
    generic = plan.steps[why.else_]
    assert isinstance(generic, SendStep) and kind(generic) == "push"

    assert any(wait.match_entry == "order_id" for wait in steps_of(plan, WaitForEventStep))
    assert plan.goal is not None and plan.goal.event == "order_placed"
    assert plan.goal.value_prop is not None
    assert "order_placed" in {criterion.event for criterion in plan.exit_criteria}


def test_seed_003_risk_check_at_20_00_then_popup_ab_with_control() -> None:
    plan = example(SEED_PLANS["003"])
    shanghai = ZoneInfo("Asia/Shanghai")
    assert plan.timezone == "Asia/Shanghai"
    assert isinstance(plan.entry, AtEntry)
    assert plan.entry.at.astimezone(shanghai).time() == time(20)
    first = plan.steps[plan.start_step]
    # the risk check asks risk control, and only those it clears go on to the split
    assert isinstance(first, CheckStep) and first.service in channels().services
    (split,) = steps_of(plan, AbSplitStep)
    assert [b.next for b in first.branches] == ["picks"]
    assert plan.steps[first.else_ or ""].type == "exit" and first.on_failure == first.else_
    assert sum(arm.control for arm in split.arms) == 1
    sends = [plan.steps[arm.next] for arm in split.arms if arm.next is not None]
    assert len(sends) == 2
    for send in sends:
        assert isinstance(send, SendStep)
        channel = channels().channels[send.channel]
        assert channel.type == "in_app" and channel.provider.kind == "inbox"
        assert channel.provider.slot == "popup"


def test_seed_004_low_risk_users_split_3_vs_6_instalments() -> None:
    plan = example(SEED_PLANS["004"])
    assert plan.audience is not None and plan.audience.source == "segment"
    assert any(
        isinstance(leaf, TagCondition)
        and (leaf.tag, leaf.op, leaf.value) == ("risk_level", "eq", "low")
        for leaf in iter_conditions(plan.audience.rule)
    )
    (split,) = steps_of(plan, AbSplitStep)
    assert [arm.weight for arm in split.arms] == [50, 50]
    assert not any(arm.control for arm in split.arms)
    offers = []
    for arm in split.arms:
        assert arm.next is not None
        update = plan.steps[arm.next]
        assert isinstance(update, UpdateStep) and update.set is not None
        offers.append(update.set["instalment_offer"])
        assert update.next is not None
        assert isinstance(plan.steps[update.next], SendStep)
    assert offers in ([3, 6], [6, 3])
    assert plan.goal is not None and plan.goal.event == "loan_taken"
    assert plan.goal.value_prop is not None


def test_push_then_sms_to_non_clickers_with_a_holdout() -> None:
    plan = example("push-click-sms")
    (split,) = steps_of(plan, AbSplitStep)
    assert [(arm.weight, arm.control) for arm in split.arms] == [
        (45, False),
        (45, False),
        (10, True),
    ]
    push = plan.steps[split.arms[0].next or ""]
    assert isinstance(push, SendStep) and channels().channels[push.channel].type == "push"
    wait = plan.steps[push.next or ""]
    assert isinstance(wait, WaitForEventStep) and wait.event == "push_clicked"
    assert wait.within.total_seconds() == 86400
    sms = plan.steps[wait.on_timeout or ""]
    assert isinstance(sms, SendStep) and channels().channels[sms.channel].type == "sms"


def test_every_tag_the_examples_read_is_in_the_example_registry() -> None:
    tags = load_tags_file(EXAMPLES / "tags.yaml")
    registry = {
        name: RegisteredTag(name, "published", live=definition, live_version=1)
        for name, definition in tags.tags.items()
    }
    for path in example_paths():
        plan = load_plan(path, channels=channels())
        assert rule_tag_problems(plan, registry, allow_disabled=False) == [], path.name
    read = {
        tag for path in example_paths() for tag in plan_tags(load_plan(path, channels=channels()))
    }
    assert read <= set(tags.tags)
    assert read, "the examples read tags: this test must check something"
