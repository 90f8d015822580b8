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

from .isolated import RenderPool
from .render import PageUser, Renderer, RenderError, user_fields

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
    of each send step of ``plan`` that uses it, or with none when no step does. Templates
    that run Jinja code render in a child process, as in the worker, so none can hang this
    command."""
    renderer = Renderer(channels, limits=limits)
    uses = _step_vars(plan)
    pool: RenderPool | None = None
    try:
        for channel_name, channel in sorted(channels.channels.items()):
            for template_name in sorted(channel.templates):
                path = f"channels.{channel_name}.templates.{template_name}"
                where = f"{channel_name}.{template_name}."
                for step_vars in uses.get((channel_name, template_name), [{}]):
                    page: list[PageUser] = [(dict(SAMPLE_USER), None)]
                    if renderer.runs_jinja(channel_name, template_name):
                        pool = pool or RenderPool(channels, limits=limits, size=1)
                        [result] = pool.render_page(channel_name, template_name, step_vars, page)
                    else:
                        [result] = renderer.render_page(
                            channel_name, template_name, vars=step_vars, users=page
                        )
                    if isinstance(result, RenderError) and result.category in _REPORTED:
                        yield _problem(path, where, result)
                        break
    finally:
        if pool is not None:
            pool.close()


def _problem(path: str, where: str, failure: RenderError) -> Problem:
    if failure.reason.startswith(where):
        field, _, detail = failure.reason.removeprefix(where).partition(": ")
        return Problem(f"{path}.{field}", f"test render: {detail}")
    return Problem(path, f"test render: {failure.reason}")


def _step_vars(plan: Plan | None) -> Mapping[tuple[str, str], list[dict[str, JsonValue]]]:
    uses: dict[tuple[str, str], list[dict[str, JsonValue]]] = {}
    for step in plan.steps.values() if plan is not None else ():
        if isinstance(step, SendStep):
            uses.setdefault((step.channel, step.template), []).append(dict(step.vars))
    return uses
