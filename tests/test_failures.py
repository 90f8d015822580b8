"""The failure names counters carry form a small closed set, whatever providers answer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from journeys.contracts import failures
from journeys.contracts.counters import Counters

CODED = {f"{kind} {code}" for kind in ("HTTP", "SMTP") for code in range(100, 600)}
NAMES = failures.FIXED | CODED
EVERY_NAME = NAMES | {failures.DEAD + name for name in NAMES}


@given(st.text(max_size=300))
def test_any_text_becomes_a_fixed_name(text: str) -> None:
    assert failures.category(text) in EVERY_NAME
    assert failures.of_recorded(text) in NAMES


@given(st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=200))
def test_the_failure_map_stays_small_whatever_the_answers(answers: list[str]) -> None:
    counters = Counters()
    for answer in answers:
        for key in (failures.category(answer), failures.of_recorded(answer)):
            counters.failed[key] = counters.failed.get(key, 0) + 1
    assert len(counters.failed) <= 2 and set(counters.failed) <= EVERY_NAME


def test_a_recorded_reason_counts_under_its_category_and_keeps_the_story() -> None:
    story = 'HTTP 400: {"error": "invalid recipient: phone +15550100 email a@b"}'
    recorded = failures.recorded(failures.http_status(400), story)
    assert recorded == story  # the category is already its first word
    assert failures.of_recorded(recorded) == "HTTP 400"
    render = failures.recorded(failures.TEMPLATE_LIMITS, "push.hello.body: a value too large")
    assert failures.of_recorded(render) == failures.TEMPLATE_LIMITS
    assert render.endswith("a value too large")
    assert failures.category("invalid recipient: +15550100") == failures.PROVIDER
    assert failures.category("dead: timeout") == "dead: timeout"
    assert failures.category("dead: dead: x") == "dead: provider error"
