"""``python -m bench.render_bounds``: what the template bounds cost a Jinja render.

Renders one template with a loop, a filter and a branch through the stock immutable sandbox
and through :class:`~journeys.template_sandbox.BoundedSandbox`, same text and context, and
prints microseconds per render (best of 5 runs of 20,000) and the ratio; then a page of
1,000 users of a channel template rendered in this process and through a render child
(:mod:`activities.channels.isolated`, the worker's path for templates that run Jinja code).
Each pair runs in this one process, so the ratios hold on a noisy machine.
"""

from __future__ import annotations

import timeit
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from activities.channels.isolated import RenderPool
from activities.channels.render import Renderer, user_fields
from journeys.channels_config import ChannelsFile
from journeys.template_sandbox import BoundedSandbox, TemplateLimits

TEMPLATE = (
    "Hi {{ user.first_name|default('there') }}, "
    "{% if user.tier == 'gold' %}gold{% else %}{{ vars.pct }}% off{% endif %} "
    "{% for i in range(3) %}{{ i }}{% endfor %}"
)
CONTEXT: dict[str, dict[str, Any]] = {
    "user": {"first_name": "Ann", "tier": "x"},
    "vars": {"pct": 5},
    "event": {},
}
RENDERS = 20_000
PAGE = 1_000


def main() -> None:
    stock = ImmutableSandboxedEnvironment(undefined=jinja2.ChainableUndefined)
    bounded = BoundedSandbox(undefined=jinja2.ChainableUndefined)
    before = stock.from_string(TEMPLATE)
    after = bounded.compile_text(TEMPLATE)
    assert before.render(CONTEXT) == bounded.render_bounded(after, CONTEXT)

    def best(render: object) -> float:
        runs = timeit.repeat(render, number=RENDERS, repeat=5)  # type: ignore[arg-type]
        return min(runs) / RENDERS * 1e6

    stock_us = best(lambda: before.render(CONTEXT))
    bounded_us = best(lambda: bounded.render_bounded(after, CONTEXT))
    print(f"stock sandbox   {stock_us:6.1f} us a render")
    print(f"bounded sandbox {bounded_us:6.1f} us a render  ({bounded_us / stock_us:.2f}x)")
    page()


def page() -> None:
    channels = ChannelsFile.model_validate(
        {
            "channels": {
                "push": {
                    "type": "push",
                    "provider": {"kind": "log"},
                    "templates": {"t": {"title": "Hi", "body": TEMPLATE}},
                }
            }
        }
    )
    users = [(user_fields(f"u{n}", attrs=CONTEXT["user"]), None) for n in range(PAGE)]
    prepared = Renderer(channels).prepare("push", "t", vars=CONTEXT["vars"])
    pool = RenderPool(channels, limits=TemplateLimits(), size=1)
    try:
        pool.render_page("push", "t", CONTEXT["vars"], users[:1])  # start the child
        here = min(
            timeit.repeat(lambda: [prepared.render_user(u) for u, _ in users], number=1, repeat=5)
        )
        child = min(
            timeit.repeat(
                lambda: pool.render_page("push", "t", CONTEXT["vars"], users), number=1, repeat=5
            )
        )
    finally:
        pool.close()
    print(f"page of {PAGE} in process  {here * 1e3:6.1f} ms")
    print(f"page of {PAGE} in a child  {child * 1e3:6.1f} ms  ({child / here:.2f}x)")


if __name__ == "__main__":
    main()
