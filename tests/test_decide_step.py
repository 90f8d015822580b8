"""A journey's ``decide`` step routes each user by a decision instance, end to end (real
worker, Temporal, Redis, PostgreSQL, the HTTP receiver), and publishing refuses a step the
instance cannot answer."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from activities.db import decision_store, plan_store
from journeys.ab import bucket
from journeys.decisions.model import Instance, Scene
from journeys.errors import PlanInvalid
from journeys.plan.models import Plan
from tests.decision_kit import load, own_scene_and_instance
from tests.engine import ROOT
from tests.journey_runner import JourneyKit


def offer_step(name: str, **change: Any) -> dict[str, Any]:
    return {
        "type": "decide",
        "instance": name,
        "key": "instalments",
        "fields": {"channel": "app", "amount": 199},
        "branches": [
            {"name": "six", "when": 6, "next": "six"},
            {"name": "three", "when": 3, "next": "three"},
        ],
        **change,
    }


async def test_users_go_the_way_their_decision_says(journey: JourneyKit) -> None:
    _, instance = await own_scene_and_instance(journey.pool)
    await decision_store.save_draft(journey.pool, instance)
    version = await decision_store.publish(journey.pool, instance.instance)
    tag = uuid.uuid4().hex[:6]
    risks = ("low", "medium", "high")
    people = {f"dec{tag}-{n:03d}": risks[n % 3] for n in range(90)}
    outcome = await journey.run(
        {
            "steps": {
                "offer": offer_step(instance.instance),
                "six": {"type": "send", "channel": "push", "template": "hello"},
                "three": {"type": "send", "channel": "popup", "template": "hello"},
            }
        },
        users=list(people),
        profiles={u: {"attrs": {"risk_level": r}} for u, r in people.items()},
    )
    salt = "instalments-2026-12"

    def expected(user: str) -> list[str]:
        if people[user] == "low":  # the experiment: control 3, test 6 (interest free)
            return ["offer", "three" if bucket(salt, user) < 5_000 else "six"]
        return ["offer", "three"] if people[user] == "medium" else ["offer"]  # default: 1

    assert outcome.paths() == {u: expected(u) for u in sorted(people)}
    routes = outcome.nodes["offer"].routes
    assert routes == {
        name: n
        for name, n in {
            "six": sum(1 for u in people if expected(u)[1:] == ["six"]),
            "three": sum(1 for u in people if expected(u)[1:] == ["three"]),
            "else": 30,
        }.items()
        if n
    }
    pushed = {m["user_id"] for m in journey.receiver.messages().values()}
    assert pushed == {u for u in people if expected(u)[1:] == ["six"]}
    rows = await journey.pool.fetch(
        "SELECT user_id, version, strategy, grp FROM decisions WHERE instance_id = $1",
        instance.instance,
    )
    assert {r["user_id"] for r in rows} == set(people)  # each decision recorded
    assert {r["version"] for r in rows} == {version.version}
    assert {r["user_id"] for r in rows if r["strategy"] is None} == {
        u for u, r in people.items() if r == "high"
    }


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"instance": "no-such-instance"}, "steps.offer.decide.instance",
         "no published instance 'no-such-instance'"),
        ({"fields": {"channel": "app"}}, "steps.offer.decide.fields",
         "needs field amount"),
        ({"fields": {"channel": "app", "amount": 1, "colour": "red"}},
         "steps.offer.decide.fields.colour", "not a field of scene"),
    ],
)  # fmt: skip
async def test_publishing_refuses_a_decide_step_its_instance_cannot_answer(
    journey: JourneyKit, change: dict[str, Any], path: str, reason: str
) -> None:
    _, instance = await own_scene_and_instance(journey.pool)
    await decision_store.save_draft(journey.pool, instance)
    await decision_store.publish(journey.pool, instance.instance)
    plan = Plan.model_validate(
        {
            "id": f"dec-{uuid.uuid4().hex[:6]}",
            "name": "decide",
            "audience": {"source": "list", "name": "x"},
            "entry": {"type": "immediate"},
            "steps": {"offer": offer_step(instance.instance, **change), "six": {"type": "exit"},
                      "three": {"type": "exit"}},
        }
    )  # fmt: skip
    with pytest.raises(PlanInvalid) as refused:
        await plan_store.publish(journey.pool, plan)
    assert any(p.path == path and reason in p.reason for p in refused.value.problems), (
        refused.value.problems
    )


async def test_the_checkout_offer_example(journey: JourneyKit) -> None:
    """``examples/checkout-offer.yaml`` over the example instance: its segment picks low and
    medium risk users, the instance decides each one's offer."""
    journey.use_example_channels()
    await decision_store.define_scene(
        journey.pool, Scene.model_validate(load("payment.scene.yaml"))
    )
    instance = Instance.model_validate(load("checkout-instalments.yaml"))
    await decision_store.save_draft(journey.pool, instance)
    await decision_store.publish(journey.pool, instance.instance)
    tag = uuid.uuid4().hex[:6]
    risks = ("low", "medium", "high")
    people = {f"co{tag}-{n:03d}": risks[n % 3] for n in range(60)}
    try:
        outcome = await journey.run(
            ROOT / "examples" / "checkout-offer.yaml",
            users=None,
            profiles={u: {"attrs": {"risk_level": r}} for u, r in people.items()},
        )
    finally:
        await journey.pool.execute("DELETE FROM users WHERE user_id = ANY($1)", list(people))
    for user, risk in people.items():
        if risk == "high":
            assert user not in outcome.users  # the segment left them out
            continue
        six = risk == "low" and bucket("instalments-2026-12", user) >= 5_000
        tell = "tell_6" if six else "tell_3"
        assert outcome.users[user].path == ["offer", tell], user
        assert outcome.users[user].messages == [tell]
    titles = {
        m["user_id"]: m["content"]["title"]
        for m in journey.receiver.messages().values()
        if m["user_id"] in people
    }
    assert {t for u, t in titles.items() if people[u] == "medium"} == {
        "Pay in 3 interest-free instalments"
    }
    assert "Pay in 6 interest-free instalments" in titles.values()
