"""No silent promises: plan fields the engine does not act on yet are named, never ignored."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from journeys.channels_config import Channel, ChannelsFile, load_channels
from journeys.plan.limits import Limits
from journeys.plan.models import Plan
from journeys.plan.unenforced import (
    CANNOT_LAUNCH,
    NOT_ENFORCED,
    PRIORITY_IDLE,
    UNENFORCED_CHANNEL_OPTIONS,
    UNENFORCED_LIMITS,
    Unenforced,
    idle_priority,
    unenforced_fields,
)
from journeys.plan.validate import load_plan
from starter.plan_files import NOT_PLANS
from starter.plan_tags import NOT_CHECKED
from starter.stack.probes import free_port
from tests.conftest import ROOT, spawn_journeys

EXAMPLES = ROOT / "examples"
CHANNELS_FILE = EXAMPLES / "channels.yaml"

# What warns today, from the plan alone: nothing. Every delivery control is enforced
# (issue 16) and schedule entries become Temporal Schedules (issue 17).
EXPECTED: dict[str, list[str]] = {
    "birthday-week": [],
    "cancelled-order-recall": [],
    "checkout-offer": [],
    "daily-checkin": [],
    "instalments-ab": [],
    "member-day": [],
    "order-shipped": [],
    "push-click-sms": [],
    "tonight-popup-ab": [],
    "weekly-digest": [],
    "welcome-blast": [],
}
# What the commands add with no policy file: a priority nothing weighs (no arbitration window)
IDLE_PRIORITY = {"cancelled-order-recall", "instalments-ab", "push-click-sms", "tonight-popup-ab"}
IDLE_PRIORITY |= {"weekly-digest"}

QUIET_PLAN: dict[str, Any] = {
    "id": "quiet",
    "name": "Nothing unenforced",
    "audience": {"source": "list", "name": "everyone"},
    "entry": {"type": "immediate"},
    "steps": {"hello": {"type": "send", "channel": "popup", "template": "hello"}},
    # every enforced limit, and priority at its default written out by hand
    "limits": {
        "page_size": 50,
        "concurrency": 2,
        "rate": "100/s",
        "priority": 50,
        "retry": {"attempts": 2, "backoff": "1m"},
    },
}
QUIET_CHANNELS = ChannelsFile.model_validate(
    {
        "channels": {
            "popup": {
                "type": "in_app",
                "provider": {"kind": "inbox"},
                "cost": 0,
                "templates": {"hello": {"body": "Hello"}},
            },
            # rate and cost on a channel the plan does not send through warn nobody
            "sms": {
                "type": "sms",
                "provider": {"kind": "log"},
                "rate": "5/s",
                "cost": 0.04,
                "templates": {"hello": {"body": "Hello"}},
            },
        }
    }
)


def channels() -> ChannelsFile:
    return load_channels(CHANNELS_FILE)


def example_stems() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.yaml") if p.name not in NOT_PLANS)


def test_exactly_these_fields_warn_in_the_examples() -> None:
    found = {
        stem: [
            w.path
            for w in unenforced_fields(
                load_plan(EXAMPLES / f"{stem}.yaml", channels=channels()), channels=channels()
            )
        ]
        for stem in example_stems()
    }
    assert found == EXPECTED


def test_a_priority_nothing_weighs_is_named() -> None:
    plan = load_plan(EXAMPLES / "push-click-sms.yaml", channels=channels())
    assert idle_priority(plan, arbitration=timedelta(0)) == Unenforced(
        "limits.priority", PRIORITY_IDLE
    )
    assert idle_priority(plan, arbitration=timedelta(seconds=10)) is None
    # the default priority asks for nothing, policy or not
    assert idle_priority(Plan.model_validate(QUIET_PLAN), arbitration=timedelta(0)) is None


def test_a_plan_without_unenforced_fields_gives_no_warnings() -> None:
    plan = Plan.model_validate(QUIET_PLAN)
    assert unenforced_fields(plan, channels=QUIET_CHANNELS) == []
    # a stored version writes every default out; reading it back must not warn either
    stored = Plan.model_validate(plan.model_dump(mode="json", by_alias=True))
    assert unenforced_fields(stored, channels=QUIET_CHANNELS) == []


def test_the_lists_name_real_fields() -> None:
    # a rename in the models would otherwise silence a warning without failing anything
    assert set(UNENFORCED_LIMITS) <= set(Limits.model_fields)
    assert set(UNENFORCED_CHANNEL_OPTIONS) <= set(Channel.model_fields)


# the real `journeys` command, as a child process; neither command here needs a service


def offline_env(tmp_path: Path) -> dict[str, str]:
    """No channels file from the environment, and services at ports where nothing listens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "JOURNEYS_"))}
    return env | {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/journeys",
        "JOURNEYS_HOME": str(tmp_path / "home"),
        "JOURNEYS_CHANNELS": str(tmp_path / "absent.yaml"),
    }


async def journeys(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await spawn_journeys(*args, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def warning_text(path: str) -> str:
    if path == "entry.type":
        return f"schedule: {CANNOT_LAUNCH}"
    if path == "limits.priority":
        return PRIORITY_IDLE
    return NOT_ENFORCED


def command_warnings(stem: str) -> list[str]:
    """The paths ``validate`` and ``launch`` warn about, with no policy file."""
    return EXPECTED[stem] + (["limits.priority"] if stem in IDLE_PRIORITY else [])


def warning_lines(stem: str) -> list[str]:
    return [f"  ! {path}: {warning_text(path)}" for path in command_warnings(stem)]


async def test_validate_prints_one_warning_line_per_field(tmp_path: Path) -> None:
    plan = EXAMPLES / "tonight-popup-ab.yaml"
    code, out, err = await journeys(
        offline_env(tmp_path), "validate", str(plan), "--channels", str(CHANNELS_FILE)
    )
    assert code == 0, err
    steps = len(load_plan(plan, channels=channels()).steps)
    *lines, note = out.splitlines()
    assert lines == [
        f"✓ {plan}: plan tonight-popup-ab is valid ({steps} steps)",
        *warning_lines("tonight-popup-ab"),
    ]
    # offline, its rules' tags cannot be checked; validate says so and still passes the file
    assert note.startswith(f"  ! rules: {NOT_CHECKED}: cannot reach PostgreSQL")


@pytest.mark.parametrize("stem", ["push-click-sms", "welcome-blast"])
async def test_validate_json_lists_the_warnings(tmp_path: Path, stem: str) -> None:
    plan = EXAMPLES / f"{stem}.yaml"
    code, out, err = await journeys(
        offline_env(tmp_path), "validate", str(plan), "--channels", str(CHANNELS_FILE), "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["valid"] is True and result["problems"] == []
    warnings = result["warnings"]
    if stem == "push-click-sms":  # its rules read tags: the registry is not there to check
        note = warnings.pop()
        assert note["path"] == "rules" and note["text"].startswith(NOT_CHECKED)
    assert warnings == [
        {"path": path, "text": warning_text(path)} for path in command_warnings(stem)
    ]


async def test_an_invalid_plan_has_problems_and_no_warnings(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(QUIET_PLAN | {"limits": {"priority": 70}, "shards": 3}))
    code, out, _ = await journeys(
        offline_env(tmp_path), "validate", str(plan), "--channels", str(CHANNELS_FILE), "--json"
    )
    assert code == 1
    assert json.loads(out)["warnings"] == []


async def test_launch_prints_the_warnings_before_it_starts_anything(tmp_path: Path) -> None:
    # nothing listens at the configured Temporal address: the launch fails right after the
    # warnings, which shows they come first and need no service
    env = offline_env(tmp_path)
    plan = EXAMPLES / "weekly-digest.yaml"
    code, out, err = await journeys(
        env, "launch", str(plan), "--channels", str(CHANNELS_FILE), "--json"
    )
    assert code == 1
    assert out == ""  # stdout is kept for the launch result (one JSON document with --json)
    assert err.splitlines() == [
        *warning_lines("weekly-digest"),
        f"error: cannot reach Temporal at {env['TEMPORAL_ADDRESS']} "
        "(is the stack running? start it with `journeys dev`)",
    ]
