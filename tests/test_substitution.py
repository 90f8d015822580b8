"""Templates that only substitute names render without Jinja, and exactly as Jinja would."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from activities.channels.render import template_environment
from activities.channels.substitution import Substitution
from journeys.template_sandbox import TemplateLimits

SIMPLE = [
    "Hi {{ user.first_name }}",
    "{{user.first_name}}, {{ vars.amount }} off until {{ event.until }}!",
    "no names at all",
    "",
    "{{ user.tier }}{{ user.tier }} } }} {",
    "line one\n{{ vars.code }}\n",
]
NOT_SIMPLE = [
    "{{ user.first_name | upper }}",
    "{% if user.vip %}VIP{% endif %}",
    "{{- user.first_name }}",
    "{{ user.items }}",  # a dict method: Jinja's sandbox finds the attribute first
    "{{ user }}",
    "{{ user.address.city }}",
    "{# a comment #}{{ user.first_name }}",
    "{{ other.first_name }}",
]
CONTEXTS: list[dict[str, Any]] = [
    {"user": {}, "vars": {}, "event": {}},
    {
        "user": {"first_name": "Ann", "tier": 2},
        "vars": {"amount": 10.5, "code": "X1"},
        "event": {"until": "Friday"},
    },
    {"user": {"first_name": None, "tier": True}, "vars": {"amount": 0}, "event": {"until": ""}},
    # values Jinja prints its own way go to Jinja
    {
        "user": {"first_name": ["A", "B"], "tier": {"k": 1}},
        "vars": {"amount": date(2026, 11, 30)},
        "event": {},
    },
]


@pytest.mark.parametrize("text", SIMPLE)
def test_simple_templates_render_as_jinja_does(text: str) -> None:
    env = template_environment(autoescape=False, limits=TemplateLimits())
    jinja = env.compile_text(text)
    simple = Substitution.parse(text, jinja)
    assert simple is not None
    for context in CONTEXTS:
        assert simple.render(context) == jinja.render(context)


@pytest.mark.parametrize("text", NOT_SIMPLE)
def test_anything_more_than_names_is_left_to_jinja(text: str) -> None:
    env = template_environment(autoescape=False, limits=TemplateLimits())
    assert Substitution.parse(text, env.compile_text(text)) is None
