"""Find the channels file for a plan and validate both, as every plan command does."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from activities.channels.template_check import template_problems
from journeys.channels_config import ChannelsFile, load_channels
from journeys.errors import ChannelsInvalid, PlanInvalid, PolicyInvalid, Problem
from journeys.plan.models import Plan
from journeys.plan.problems import sorted_problems
from journeys.plan.unenforced import Unenforced, idle_priority, unenforced_fields
from journeys.plan.validate import load_plan
from journeys.policy import (
    channel_problems,
    load_policy,
    plan_problems,
    policy_at,
    spend_problems,
)
from journeys.settings import get_settings

NOT_PLANS = frozenset({"channels.yaml", "tags.yaml", "policy.yaml"})
"""Files that sit beside the example plans and are not plans: channels, the tag registry,
the workspace policy."""

NO_CHANNELS = Problem(
    "channels", "no channels file found (pass --channels or set JOURNEYS_CHANNELS)"
)


def find_channels_file(plan_file: Path, *, explicit: Path | None) -> Path | None:
    """``--channels``, else JOURNEYS_CHANNELS if it exists, else channels.yaml beside the plan."""
    if explicit is not None:
        return explicit
    configured = get_settings().channels_file
    if configured.exists():
        return configured
    beside = plan_file.parent / "channels.yaml"
    return beside if beside.exists() else None


def check_plan_file(
    plan_file: Path, *, channels_file: Path | None
) -> tuple[Plan | None, list[Problem]]:
    """Validate ``plan_file`` against its channels file; the plan only when nothing is wrong.

    A missing or invalid channels file is reported among the plan's problems (the channels
    file's own problems say which file they are in), and the plan is still checked without it.
    """
    problems: list[Problem] = []
    channels: ChannelsFile | None = None
    path = find_channels_file(plan_file, explicit=channels_file)
    if path is None:
        problems.append(NO_CHANNELS)
    else:
        try:
            channels = load_channels(path)
        except ChannelsInvalid as exc:
            problems.extend(
                Problem(problem.path or "channels", f"{problem.reason} (in {path})")
                for problem in exc.problems
            )
    plan: Plan | None = None
    try:
        plan = load_plan(plan_file, channels=channels)
    except PlanInvalid as exc:
        problems.extend(exc.problems)
    if channels is not None and path is not None:
        limits = get_settings().template_limits()
        problems.extend(
            Problem(problem.path, f"{problem.reason} (in {path})")
            for problem in template_problems(channels, plan=plan, limits=limits)
        )
    problems.extend(policy_problems_for(plan, channels))
    problems.extend(spend_problems(plan, None, channels))
    return (plan if not problems else None), sorted_problems(problems)


def policy_problems_for(plan: Plan | None, channels: ChannelsFile | None) -> list[Problem]:
    """The policy file's own problems (``JOURNEYS_POLICY``), its channels missing from the
    channels file, and what the plan asks that the policy cannot give."""
    path = get_settings().policy_file
    if path is None:
        return []
    try:
        policy = load_policy(path)
    except PolicyInvalid as exc:
        return [Problem(p.path or "policy", f"{p.reason} (in {path})") for p in exc.problems]
    problems = [
        Problem(p.path, f"{p.reason} (in {path})")
        for p in channel_problems(policy, channels) + spend_problems(None, policy, channels)
    ]
    if plan is not None:
        problems += plan_problems(plan, policy)
    return problems


def read_plan(plan_file: Path, *, channels: Path | None) -> Plan:
    """Load and fully validate ``plan_file``; raises PlanInvalid listing every problem."""
    plan, problems = check_plan_file(plan_file, channels_file=channels)
    if plan is None:
        raise PlanInvalid(str(plan_file), problems)
    return plan


def plan_warnings(plan: Plan, plan_file: Path, *, channels: Path | None) -> list[Unenforced]:
    """The fields ``plan`` and the channels it sends through set that are not enforced yet.

    Called only for a plan that validated, so its channels file was found and is valid; it is
    read again rather than threaded through :func:`check_plan_file`, whose result other
    commands use as it is.
    """
    path = find_channels_file(plan_file, explicit=channels)
    found = unenforced_fields(plan, channels=load_channels(path) if path is not None else None)
    policy_file = get_settings().policy_file
    policy = policy_at(policy_file)
    idle = idle_priority(plan, arbitration=policy.arbitration if policy else timedelta(0))
    return found + ([idle] if idle is not None else [])
