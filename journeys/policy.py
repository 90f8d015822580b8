"""The workspace policy file (``JOURNEYS_POLICY``): controls every plan's sends obey.

```yaml
caps:                                # per user, over a rolling window, across every plan
  - {max: 3, per: 1d}                # all channels together
  - {channel: sms, max: 1, per: 1d}
quiet_hours:                         # per channel, or every channel without one
  - {channel: sms, start: "21:00", end: "08:00", mode: defer}
fallback_zone: Asia/Shanghai         # for users whose profile has no time zone
quotas:                              # workspace packs across plans
  - {channel: sms, max_messages: 100000}
arbitration: 10s                     # priority between plans reaching a user at once
suppression: {event: unsubscribed, channel_property: channel}
negative_events:                     # what a message may cost beyond its price (reports, ROI)
  - {name: unsubscribed, cost: 2.5, window: 3d}
approval: required                   # a version launches once someone else approved it
```

A launch reads the file once and the run keeps that policy to its end, so a run is checked
by the rules it started under and its history shows which (``PlanRunInput.policy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError

from journeys.channels_config import ChannelsFile
from journeys.durations import Duration, format_duration, within
from journeys.errors import PlanInvalid, PolicyInvalid, Problem
from journeys.plan.common import ChannelName, PlanModel, Text
from journeys.plan.limits import Cap, ChannelSpend, QuietHours
from journeys.plan.models import Plan
from journeys.plan.problems import problems_from_error, sorted_problems
from journeys.plan.source import load_checked
from journeys.schedule import TimeZoneName

MAX_HISTORY = timedelta(days=400)


class ChannelQuietHours(QuietHours):
    """Quiet hours of one channel, or (no channel) of every channel without its own."""

    channel: ChannelName | None = None


class Quota(ChannelSpend):
    """A workspace pack for one channel, shared by every plan: messages or money."""


class Suppression(PlanModel):
    """The event that suppresses its user: on ``channel_property``'s channel, else on all."""

    event: Text = "unsubscribed"
    channel_property: Text = "channel"


class NegativeEvent(PlanModel):
    """An event that counts against the message before it (an unsubscribe, an uninstall):
    attributed to the user's last message sent within ``window`` before the event, on any
    channel, and worth ``cost`` in the report's currency."""

    name: Text
    cost: float = Field(default=0.0, ge=0)
    window: Annotated[Duration, within(maximum=timedelta(days=90))] = timedelta(days=3)


class Policy(PlanModel):
    """Workspace-wide delivery controls; plans add their own in ``limits``."""

    caps: list[Cap] = Field(default_factory=list)
    quiet_hours: list[ChannelQuietHours] = Field(default_factory=list)
    fallback_zone: TimeZoneName | None = None
    """Quiet hours in users' zones use it for profiles without one (else the plan's zone)."""
    quotas: list[Quota] = Field(default_factory=list)
    history: Annotated[Duration, within(minimum=timedelta(hours=1), maximum=MAX_HISTORY)] = (
        timedelta(days=35)
    )
    """How long a send is remembered for caps; no cap may look further back."""
    arbitration: Annotated[Duration, within(positive=False, maximum=timedelta(minutes=10))] = (
        timedelta(0)
    )
    """How long a capped send waits for a higher-priority plan to claim the same user
    (0: first come, first served)."""
    suppression: Suppression = Suppression()
    negative_events: list[NegativeEvent] = Field(default_factory=list)
    approval: Literal["none", "required"] = "none"
    """``required``: a published version is pending until someone other than its publisher
    approves it (``journeys approve``), and ``launch`` refuses it until then."""


def policy_problems(policy: Policy) -> list[Problem]:
    """What the model's field checks cannot see: windows beyond the history, repeats."""
    problems = [
        Problem(f"caps.{i}.per", f"longer than history ({format_duration(policy.history)})")
        for i, cap in enumerate(policy.caps)
        if cap.per > policy.history
    ]
    problems += _repeated("quiet_hours", [q.channel for q in policy.quiet_hours], "quiet hours")
    problems += _repeated("quotas", [q.channel for q in policy.quotas], "quota")
    seen: set[str] = set()
    for i, negative in enumerate(policy.negative_events):
        if negative.name in seen:
            problems.append(Problem(f"negative_events.{i}.name", "a second entry for this event"))
        seen.add(negative.name)
    return problems


def _repeated(field: str, channels: list[str | None], what: str) -> list[Problem]:
    seen: set[str | None] = set()
    problems = []
    for i, channel in enumerate(channels):
        if channel in seen:
            name = channel or "every channel"
            problems.append(Problem(f"{field}.{i}.channel", f"a second {what} for {name}"))
        seen.add(channel)
    return problems


def plan_problems(plan: Plan, policy: Policy | None) -> list[Problem]:
    """What a plan asks that the policy cannot give: caps looking back further than the
    sends are remembered."""
    history = (policy or Policy()).history
    windows = [(f"limits.caps.{i}.per", cap.per) for i, cap in enumerate(plan.limits.caps)]
    if plan.limits.plan_cap is not None:
        windows.append(("limits.plan_cap.per", plan.limits.plan_cap.per))
    return [
        Problem(
            path,
            f"longer than the policy's history ({format_duration(history)}): sends "
            "are not remembered that long",
        )
        for path, per in windows
        if per > history
    ]


def channel_problems(policy: Policy, channels: ChannelsFile | None) -> list[Problem]:
    """Channels the policy names that the channels file does not declare."""
    if channels is None:
        return []
    named = [(f"caps.{i}.channel", c.channel) for i, c in enumerate(policy.caps)]
    named += [(f"quiet_hours.{i}.channel", q.channel) for i, q in enumerate(policy.quiet_hours)]
    named += [(f"quotas.{i}.channel", q.channel) for i, q in enumerate(policy.quotas)]
    return [
        Problem(path, f"no channel {name!r} in the channels file")
        for path, name in named
        if name is not None and name not in channels.channels
    ]


def spend_problems(
    plan: Plan | None, policy: Policy | None, channels: ChannelsFile | None
) -> list[Problem]:
    """Money budgets and quotas on channels without a ``cost``: they would never bind."""
    if channels is None:
        return []
    limits = [
        (f"limits.budget.{i}.max_cost", b.channel, b.max_cost)
        for i, b in enumerate(plan.limits.budget if plan else [])
    ]
    limits += [
        (f"quotas.{i}.max_cost", q.channel, q.max_cost)
        for i, q in enumerate(policy.quotas if policy else [])
    ]
    problems = []
    for path, name, max_cost in limits:
        channel = channels.channels.get(name)
        if max_cost is not None and channel is not None and channel.cost == 0:
            problems.append(
                Problem(path, f"channel {name} has no cost in the channels file to count")
            )
    return problems


def launch_policy(plan: Plan, policy: Policy | None, *, path: Path | None) -> Policy | None:
    """The policy a launch runs ``plan`` under: ``policy`` if given, else the file at
    ``path`` (``JOURNEYS_POLICY``); raises :class:`PlanInvalid` for what it cannot give."""
    if policy is None:
        policy = policy_at(path)
    refuse_against_policy(plan, policy)
    return policy


def refuse_against_policy(plan: Plan, policy: Policy | None) -> None:
    """Raise :class:`PlanInvalid` naming each field of ``plan`` the policy cannot serve."""
    problems = plan_problems(plan, policy)
    if problems:
        raise PlanInvalid(f"plan {plan.id}", problems)


def check_policy(data: object) -> tuple[Policy | None, list[Problem]]:
    """Validate a parsed policy document; the model only when there is no problem."""
    if not isinstance(data, Mapping):
        return None, [Problem("", "a policy file must hold a mapping")]
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        return None, sorted_problems(problems_from_error(exc))
    problems = sorted_problems(policy_problems(policy))
    return (None if problems else policy), problems


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file; raise :class:`PolicyInvalid` listing every problem."""
    return load_checked(path, check_policy, refused=PolicyInvalid)


def policy_at(path: Path | None) -> Policy | None:
    """The policy of ``JOURNEYS_POLICY`` (``settings.policy_file``), or None when unset."""
    return None if path is None else load_policy(path)
