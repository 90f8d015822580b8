"""``python -m bench.render_bounds``: what the template bounds cost a Jinja render.

Renders one template with a loop, a filter and a branch through the stock immutable sandbox
and through :class:`~journeys.template_sandbox.BoundedSandbox`, same text and context, and
prints microseconds per render (best of 5 runs of 20,000) and the ratio. Both run in this one
process, so the ratio holds on a noisy machine even when the absolute figures do not.
"""

from __future__ import annotations

import timeit

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from journeys.template_sandbox import BoundedSandbox

TEMPLATE = (
    "Hi {{ user.first_name|default('there') }}, "
    "{% if user.tier == 'gold' %}gold{% else %}{{ vars.pct }}% off{% endif %} "
    "{% for i in range(3) %}{{ i }}{% endfor %}"
)
CONTEXT = {"user": {"first_name": "Ann", "tier": "x"}, "vars": {"pct": 5}, "event": {}}
RENDERS = 20_000


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


if __name__ == "__main__":
    main()
