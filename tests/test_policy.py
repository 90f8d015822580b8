"""The policy file: every problem at once with its path, and what it compiles to."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from journeys.channels_config import load_channels
from journeys.delivery_controls import controls_for
from journeys.errors import PlanInvalid
from journeys.names import budget_key, quota_key
from journeys.plan.models import Plan
from journeys.plan.validate import check_plan
from journeys.policy import (
    Policy,
    channel_problems,
    check_policy,
    load_policy,
    refuse_against_policy,
    spend_problems,
)
from tests.conftest import ROOT, spawn_journeys

BAD = {
    "caps": [{"max": 0, "per": "1d"}, {"max": 1, "per": "90d"}],
    "quiet_hours": [{"start": "21:00", "end": "21:00"}, {"channel": "sms", "start": "25:00"}],
    "quotas": [{"channel": "sms"}],
    "history": "30d",
    "arbitration": "1h",
    "colour": "blue",
}


def test_every_problem_of_a_policy_is_named_with_its_path() -> None:
    policy, problems = check_policy(BAD)
    assert policy is None
    paths = {p.path for p in problems}
    assert {
        "caps.0.max",
        "quiet_hours.0",
        "quiet_hours.1.start",
        "quiet_hours.1.end",
        "quotas.0",
        "arbitration",
        "colour",
    } <= paths
    # windows longer than the history are found once the fields themselves are right
    _, problems = check_policy({"caps": [{"max": 1, "per": "90d"}], "history": "30d"})
    assert [str(p) for p in problems] == ["caps.0.per: longer than history (30d)"]


def plan(**limits: object) -> Plan:
    body = yaml.safe_load((ROOT / "examples" / "welcome-blast.yaml").read_text())
    return Plan.model_validate(body | {"limits": body.get("limits", {}) | limits})


def test_controls_take_the_plans_limits_and_the_policys_for_the_channel() -> None:
    policy = Policy.model_validate(
        {
            "caps": [{"max": 3, "per": "1d"}, {"channel": "sms", "max": 1, "per": "1d"}],
            "quiet_hours": [
                {"start": "22:00", "end": "08:00"},
                {"channel": "sms", "start": "20:00", "end": "09:00", "mode": "drop"},
            ],
            "quotas": [{"channel": "sms", "max_messages": 1000}],
            "fallback_zone": "Asia/Shanghai",
        }
    )
    p = plan(
        plan_cap={"max": 1, "per": "7d"},
        budget=[{"channel": "sms", "max_cost": 5.0}],
    )
    sms = controls_for(p, policy, run_id="r1", channel="sms")
    assert [(c.reason, c.max) for c in sms.caps] == [
        ("plan_cap", 1),
        ("cap", 3),
        ("channel_cap", 1),
    ]
    assert sms.quiet is not None and (sms.quiet.mode, sms.quiet.fallback) == (
        "drop",
        "Asia/Shanghai",
    )
    assert sms.budget is not None and sms.budget.key == budget_key("r1", "sms")
    assert sms.quota is not None and sms.quota.key == quota_key("sms")
    push = controls_for(p, policy, run_id="r1", channel="push")
    assert [c.reason for c in push.caps] == ["plan_cap", "cap"]
    assert push.quiet is not None and push.quiet.mode == "defer"  # the catch-all window
    assert push.budget is None and push.quota is None


def test_a_plan_cap_longer_than_the_history_is_refused_naming_the_field() -> None:
    with pytest.raises(PlanInvalid) as caught:
        refuse_against_policy(plan(plan_cap={"max": 1, "per": "60d"}), None)  # default 35d
    assert [p.path for p in caught.value.problems] == ["limits.plan_cap.per"]


async def test_policy_check_and_validate_name_the_policys_problems(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text(yaml.safe_dump({"caps": [{"channel": "nosuch", "max": 1, "per": "1d"}]}))
    proc = await spawn_journeys("policy", "check", str(bad), "--json", env=cli_env)
    out, _ = await proc.communicate()
    assert proc.returncode == 1
    assert json.loads(out)["problems"] == [
        {"path": "caps.0.channel", "reason": "no channel 'nosuch' in the channels file"}
    ]
    env = cli_env | {"JOURNEYS_POLICY": str(bad)}
    plan_file = ROOT / "examples" / "welcome-blast.yaml"
    proc = await spawn_journeys("validate", str(plan_file), "--json", env=env)
    out, _ = await proc.communicate()
    assert proc.returncode == 1
    assert [p["path"] for p in json.loads(out)["problems"]] == ["caps.0.channel"]
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"caps": [{"max": 2, "per": "1d"}]}))
    proc = await spawn_journeys("policy", "check", str(good), env=cli_env)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and "the policy is valid" in out.decode()


def test_the_example_policy_is_valid_and_its_channels_exist() -> None:
    policy = load_policy(ROOT / "examples" / "policy.yaml")
    assert channel_problems(policy, load_channels(ROOT / "examples" / "channels.yaml")) == []
    assert policy.arbitration == timedelta(seconds=30) and len(policy.caps) == 2


def test_limits_that_could_never_act_are_problems() -> None:
    body = yaml.safe_load((ROOT / "examples" / "welcome-blast.yaml").read_text())
    caps = {"caps": [{"max": 1, "per": "1d"}], "priority": 70}
    notice, problems = check_plan(body | {"transactional": True, "limits": caps}, channels=None)
    assert notice is None
    assert [p.path for p in problems] == ["limits.caps", "limits.priority"]
    channels = load_channels(ROOT / "examples" / "channels.yaml")
    money = plan(budget=[{"channel": "popup", "max_cost": 5.0}])  # popup costs nothing
    assert [p.path for p in spend_problems(money, None, channels)] == ["limits.budget.0.max_cost"]
