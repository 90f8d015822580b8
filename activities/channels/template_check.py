"""``journeys validate``'s test render: every template of the channels file, rendered for a
sample profile within the same limits the workers use, so a template that would fail every
message (over the limits, a forbidden attribute, an SMS too long) is reported before launch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pydantic import JsonValue

from journeys.channels_config import ChannelsFile
from journeys.contracts import failures
from journeys.errors import Problem
from journeys.plan.models import Plan
from journeys.plan.steps import SendStep
from journeys.template_sandbox import TemplateLimits

from .render import Renderer, RenderError, user_fields

_REPORTED = frozenset(
    {failures.TEMPLATE_LIMITS, failures.TEMPLATE_FORBIDDEN, failures.MESSAGE_TOO_LONG}
)
"""What fails for every user alike; an error that depends on the data is not reported,
since the sample profile is not the audience."""

SAMPLE_USER = user_fields(
    "sample-user",
    email="sample.user@example.com",
    phone="+15550100000",
    timezone="UTC",
    attrs={"first_name": "Sample", "last_name": "User", "name": "Sample User"},
)
"""Who the test render is for; attributes a template reads that are not here render empty,
as they do for a real user without them."""


def template_problems(
    channels: ChannelsFile, *, plan: Plan | None, limits: TemplateLimits
) -> Iterator[Problem]:
    """One problem per template that cannot render for :data:`SAMPLE_USER`: with the vars
    of each send step of ``plan`` that uses it, or with none when no step does."""
    renderer = Renderer(channels, limits=limits)
    uses = _step_vars(plan)
    for channel_name, channel in sorted(channels.channels.items()):
        for template_name in sorted(channel.templates):
            path = f"channels.{channel_name}.templates.{template_name}"
            for step_vars in uses.get((channel_name, template_name), [{}]):
                try:
                    prepared = renderer.prepare(channel_name, template_name, vars=step_vars)
                    prepared.render_user(dict(SAMPLE_USER))
                except RenderError as exc:
                    if exc.category not in _REPORTED:
                        continue  # may be the sample's own data (a missing number, say)
                    where = f"{channel_name}.{template_name}."
                    if exc.reason.startswith(where):
                        field, _, detail = exc.reason.removeprefix(where).partition(": ")
                        yield Problem(f"{path}.{field}", f"test render: {detail}")
                    else:
                        yield Problem(path, f"test render: {exc.reason}")
                    break


def _step_vars(plan: Plan | None) -> Mapping[tuple[str, str], list[dict[str, JsonValue]]]:
    uses: dict[tuple[str, str], list[dict[str, JsonValue]]] = {}
    for step in plan.steps.values() if plan is not None else ():
        if isinstance(step, SendStep):
            uses.setdefault((step.channel, step.template), []).append(dict(step.vars))
    return uses
