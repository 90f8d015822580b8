"""Fields a plan may set that the engine does not act on yet ("no silent promises").

The plan and channels models accept the whole delivery-controls section of the spec, so plans
written today keep validating when the engine catches up. Until it does, ``journeys validate``
and ``journeys launch`` name every such field a plan sets, so nobody believes a cap or quiet
hours protect their users when nothing checks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel

from journeys.channels_config import ChannelsFile
from journeys.plan.models import Plan
from journeys.plan.steps import SendStep, WebhookStep

NOT_ENFORCED = "accepted, not enforced yet"

UNENFORCED_LIMITS: tuple[str, ...] = ()
"""Fields of a plan's ``limits`` that are validated but that no activity or workflow reads.

The one list of them, with :data:`UNENFORCED_CHANNEL_OPTIONS`: later issues shrink both to
empty (issue 16 implements the delivery controls, the reports read ``cost``), and the exact
expectations in ``tests/test_unenforced.py`` make whoever enforces a field remove it here.
"""

UNENFORCED_CHANNEL_OPTIONS: tuple[str, ...] = ()
"""Options of a channel in the channels file that nothing reads yet (``rate`` is the
channel's shared token bucket, ``cost`` prices budgets and quotas)."""


PRIORITY_IDLE = (
    "acts only when the policy sets an arbitration window (JOURNEYS_POLICY: arbitration) "
    "and a cap applies to the send"
)


def idle_priority(plan: Plan, *, arbitration: timedelta) -> Unenforced | None:
    """A priority other than the default that nothing will weigh: without an arbitration
    window, plans reach a capped user first come, first served."""
    if _is_set(plan.limits, "priority") and arbitration <= timedelta(0):
        return Unenforced("limits.priority", PRIORITY_IDLE)
    return None


UNLAUNCHABLE_ENTRIES: tuple[str, ...] = ()
"""Entry kinds that validate but that ``journeys launch`` refuses (none since schedule
entries became Temporal Schedules)."""
CANNOT_LAUNCH = "accepted, cannot be launched yet"


@dataclass(frozen=True)
class Unenforced:
    """One field set in a plan (or in a channel it sends through) that is not enforced yet.

    ``path`` is dotted from the top of its file: ``limits.caps`` in the plan,
    ``channels.sms.rate`` in the channels file.
    """

    path: str
    text: str = NOT_ENFORCED

    def __str__(self) -> str:
        return f"{self.path}: {self.text}"


def unenforced_fields(plan: Plan, *, channels: ChannelsFile | None) -> list[Unenforced]:
    """Every unenforced field ``plan`` sets to something other than its default.

    An entry that cannot be launched comes first, then the limits, in the order of
    :data:`UNENFORCED_LIMITS`, then the channels the plan's
    send and webhook steps use, by name. Without ``channels`` only the plan is looked at.
    """
    found = []
    if plan.entry.type in UNLAUNCHABLE_ENTRIES:
        found.append(Unenforced("entry.type", f"{plan.entry.type}: {CANNOT_LAUNCH}"))
    found += [
        Unenforced(f"limits.{name}") for name in UNENFORCED_LIMITS if _is_set(plan.limits, name)
    ]
    if channels is None:
        return found
    for name in sent_through(plan):
        channel = channels.channels.get(name)
        if channel is None:  # an unknown channel is a validation problem, reported elsewhere
            continue
        found.extend(
            Unenforced(f"channels.{name}.{option}")
            for option in UNENFORCED_CHANNEL_OPTIONS
            if _is_set(channel, option)
        )
    return found


def sent_through(plan: Plan) -> list[str]:
    """The channels the plan's send and webhook steps deliver through, sorted and unique."""
    return sorted(
        {step.channel for step in plan.steps.values() if isinstance(step, SendStep | WebhookStep)}
    )


def _is_set(model: BaseModel, name: str) -> bool:
    # compared with the default, not model_fields_set: a stored version writes every default
    # out, and priority: 50 written by hand asks for nothing the engine does not already do
    field = type(model).model_fields[name]
    default = field.get_default(call_default_factory=True)
    return bool(getattr(model, name) != default)
