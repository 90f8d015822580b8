"""Templates cannot eat the machine: the known payloads end at a bound (a size or step budget,
never the clock), within a few MB; ``validate`` names each one; a message over the limits
fails alone, permanently, with a fixed category, and the worker goes on."""

from __future__ import annotations

import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import yaml

from activities.channels.isolated import RenderPool
from activities.channels.message import Recipient
from activities.channels.render import Renderer, RenderError, user_fields
from activities.db.pool import DbPool
from journeys.channels_config import ChannelsFile
from journeys.contracts import failures
from journeys.settings import Settings
from journeys.template_sandbox import TemplateLimits
from starter.plan_files import check_plan_file
from tests.engine import for_test, start_blast, worker_running, write_plan
from tests.journey_kit import seed_profiles

PAYLOADS = {
    "repeat": "{{ 'a' * 10**9 }}",
    "center": "{{ 'abc'|center(10**9) }}",
    "center_literal": "{{ 'abc'|center(1000000000) }}",
    "replace_chain": "{% set s = 'x' * 1000 %}{{ s|replace('x', s)|replace('x', s) }}",
    "replace_empty": "{{ 'ab'|replace('', 'x' * 200000)|replace('', 'y' * 200000) }}",
    "indent": "{{ ('a\n' * 1000)|indent(10**9) }}",
    "nested_ranges": "{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}"
    "{% endfor %}",
    "range": "{{ range(10**9)|list }}",
    "percent_width": "{{ '%999999999d' % 1 }}",
    "format_width": "{{ '{:999999999}'.format(1) }}",
    "ljust": "{{ 'x'.ljust(10**9) }}",
    "doubling": "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "macro_tree": "{% macro d(n) %}{% if n %}{{ d(n-1) }}{{ d(n-1) }}{% else %}{{ 'x' * 200000 }}"
    "{% endif %}{% endmacro %}{{ d(30) }}",
    "streamed": "{% for i in range(100000) %}{{ 'y' * 200000 }}{% endfor %}",
    "block_set": "{% set x %}{% for i in range(100000) %}{{ 'y' * 200000 }}{% endfor %}"
    "{% endset %}{{ x|length }}",
    "join": "{{ (['a' * 1000] * 200)|join('b' * 100000) }}",
    "big_power": "{{ 7 ** 100000 }}",
}
NO_CLOCK = timedelta(minutes=5)
FORBIDDEN = {
    "lipsum": "{{ lipsum(10**6) }}",
    "to_bytes": "{{ (1).to_bytes(10**9, 'big') }}",
    "translate": "{{ 'x'.translate({120: 'y' * 200000}) }}",
}


def channels_with(templates: dict[str, str]) -> ChannelsFile:
    return ChannelsFile.model_validate(
        {
            "channels": {
                "push": {
                    "type": "push",
                    "provider": {"kind": "log"},
                    "templates": {name: {"title": "t", "body": t} for name, t in templates.items()},
                }
            }
        }
    )


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_each_payload_stops_at_a_bound_within_a_few_mb(name: str) -> None:
    # the clock is out of the picture: each payload must meet a size or step bound first
    renderer = Renderer(channels_with(PAYLOADS), limits=TemplateLimits(time_limit=NO_CLOCK))
    tracemalloc.start()
    try:
        with pytest.raises(RenderError) as caught:
            renderer.render("push", name, recipient=_recipient(), vars={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.category == failures.TEMPLATE_LIMITS, caught.value.reason
    assert "longer than" not in caught.value.reason
    assert peak < 32 * 1024 * 1024, f"{name} peaked at {peak:,} bytes"


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_what_would_escape_the_estimates_is_not_callable(name: str) -> None:
    renderer = Renderer(channels_with(FORBIDDEN))
    with pytest.raises(RenderError) as caught:
        renderer.render("push", name, recipient=_recipient(), vars={})
    assert caught.value.category in (failures.TEMPLATE_FORBIDDEN, failures.TEMPLATE_ERROR)


def test_the_time_limit_stops_work_no_size_bound_sees() -> None:
    slow = "{% for i in range(90000) %}{{ [3, 1, 2]|sort|first }}{% endfor %}"
    limits = TemplateLimits(time_limit=timedelta(milliseconds=1), max_steps=10**9)
    renderer = Renderer(channels_with({"slow": slow}), limits=limits)
    with pytest.raises(RenderError) as caught:
        renderer.render("push", "slow", recipient=_recipient(), vars={})
    assert "longer than 1 ms" in caught.value.reason
    assert caught.value.category == failures.TEMPLATE_LIMITS


def test_ordinary_templates_render_as_before() -> None:
    templates = {
        "hello": "Hi {{ user.first_name|default('there') }}{% if user.vip %}, VIP{% endif %}!",
        "list": "{% for i in range(3) %}{{ i }}{{ ', ' if not loop.last }}{% endfor %}",
        "fmt": "{{ '%.2f'|format(vars.price) }} / {{ '{:>6}'.format('r') }} / {{ 'ab' ~ 'cd' }}",
    }
    renderer = Renderer(channels_with(templates))
    recipient = _recipient(vip=True)
    rendered = {
        name: renderer.render("push", name, recipient=recipient, vars={"price": 3.14159})["body"]
        for name in templates
    }
    assert rendered == {"hello": "Hi Ann, VIP!", "list": "0, 1, 2", "fmt": "3.14 /      r / abcd"}


def test_validate_names_every_template_over_the_limits(tmp_path: Path) -> None:
    channels = {
        "channels": {
            "push": {
                "type": "push",
                "provider": {"kind": "log"},
                "templates": {
                    **{name: {"title": "t", "body": t} for name, t in PAYLOADS.items()},
                    "hello": {"title": "Hi", "body": "Hi {{ user.first_name }}"},
                    # fails only for a user with the data (the sample has none): not reported
                    "data": {"title": "t", "body": "{{ user.bio * user.repeat }}"},
                },
            }
        }
    }
    path = tmp_path / "channels.yaml"
    path.write_text(yaml.safe_dump(channels))
    plan = write_plan(tmp_path, channel="push")
    _, problems = check_plan_file(plan, channels_file=path)
    reported = {p.path: p.reason for p in problems}
    expected = {f"channels.push.templates.{name}.body" for name in PAYLOADS}
    assert set(reported) == expected
    assert all("over the template limits" in reason for reason in reported.values())


async def test_a_message_over_the_limits_fails_alone_and_the_worker_goes_on(
    stack_settings: Settings, pool: DbPool, redis: aioredis.Redis, tmp_path: Path
) -> None:
    channels = {
        "channels": {
            "popup": {
                "type": "in_app",
                "provider": {"kind": "inbox"},
                "templates": {"hello": {"title": "t", "body": "{{ user.bio * user.repeat }}"}},
            }
        }
    }
    path = tmp_path / "channels.yaml"
    path.write_text(yaml.safe_dump(channels))
    settings = for_test(stack_settings, path)
    users = [f"tl-{tmp_path.name[-6:]}-{n}" for n in range(4)]
    repeats = {users[0]: 2, users[1]: 10**7, users[2]: 3, users[3]: 10**8}
    await seed_profiles(
        pool, {u: {"attrs": {"bio": "hello ", "repeat": r}} for u, r in repeats.items()}
    )
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(users) + "\n")
    plan = write_plan(tmp_path, channel="popup", shards=1)
    async with worker_running(settings):
        launched, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids
        )
        result = await handle.result()
    assert result.totals.delivered == 2
    assert result.totals.failed == {failures.TEMPLATE_LIMITS: 2}
    rows = await pool.fetch(
        "SELECT user_id, status, reason FROM deliveries WHERE run_id = $1", launched.run_id
    )
    failed = {r["user_id"]: r["reason"] for r in rows if r["status"] == "failed"}
    assert set(failed) == {users[1], users[3]}
    assert all("repeated value would be" in reason for reason in failed.values())


def _recipient(**attrs: object) -> Recipient:
    return Recipient(user_id="u1", attrs={"first_name": "Ann", **attrs})


# What no estimate catches (a comparison of deep lists is one C call; a join of many
# references to one big string is measured as empty): the render child's hard deadline and
# memory cap hold it, and the page goes on. The comparison is 400**4 pointer checks, far past
# the 1.8 s hard deadline on any machine (250**4 could finish inside it on an idle one).
ESCAPES = {
    "slow": "{% set n = range(400)|length %}{% set a = [[[[1] * n] * n] * n] * n %}"
    "{% set b = [[[[1] * n] * n] * n] * n %}"
    "{% if user.evil %}{{ a == b }}{% endif %}{{ user.first_name }}",
    "huge": "{% set s = 'a' * 250000 %}{% if user.evil %}{{ ([s] * 200000)|join }}{% endif %}"
    "{{ user.first_name }}",
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_a_render_child_stops_what_the_estimates_miss_and_the_page_goes_on(name: str) -> None:
    limits = TemplateLimits(time_limit=timedelta(milliseconds=100), max_memory=256 * 1024**2)
    pool = RenderPool(channels_with(ESCAPES), limits=limits, size=1)
    users = [
        user_fields("a", attrs={"first_name": "Ann"}),
        user_fields("b", attrs={"first_name": "Bob", "evil": True}),
        user_fields("c", attrs={"first_name": "Cy"}),
    ]
    try:
        results = pool.render_page("push", name, {}, [(u, None) for u in users])
    finally:
        pool.close()
    first, stopped, last = results
    assert first == {"title": "t", "body": "Ann"} and last == {"title": "t", "body": "Cy"}
    assert isinstance(stopped, RenderError) and stopped.category == failures.TEMPLATE_LIMITS
    expected = "was stopped" if name == "slow" else "more memory"
    assert expected in stopped.reason, stopped.reason
