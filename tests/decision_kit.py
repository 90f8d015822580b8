"""Decision scenes, instances and users in a test database."""

from __future__ import annotations

import uuid
from typing import Any

import yaml

from activities.db import decision_store
from activities.db.pool import DbPool
from journeys.decisions.model import Instance, Scene
from tests.engine import ROOT

EXAMPLES = ROOT / "examples" / "decisions"


async def seed_users(pool: DbPool, attrs: dict[str, dict[str, Any]]) -> None:
    """Profiles with these attributes (replacing what the users had)."""
    await pool.execute(
        "INSERT INTO users (user_id, attrs) SELECT * FROM unnest($1::text[], $2::jsonb[])"
        " ON CONFLICT (user_id) DO UPDATE SET attrs = EXCLUDED.attrs",
        list(attrs),
        list(attrs.values()),
    )


def load(name: str) -> dict[str, Any]:
    """An example scene or instance file, parsed."""
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return body


async def own_scene_and_instance(
    pool: DbPool, *, risk_tag: str = "risk_level", medium: int = 3
) -> tuple[Scene, Instance]:
    """The example scene and instance under ids of the test's own."""
    tag = uuid.uuid4().hex[:6]
    scene = Scene.model_validate({**load("payment.scene.yaml"), "scene": f"pay-{tag}"})
    body = load("checkout-instalments.yaml")
    body.update(instance=f"inst-{tag}", scene=scene.scene)
    for strategy in body["strategies"]:
        if strategy["rule"]["tag"] == "risk_level":
            strategy["rule"]["tag"] = risk_tag
        if strategy["name"] == "medium-risk":
            strategy["decision"] = {"instalments": medium}
    await decision_store.define_scene(pool, scene)
    return scene, Instance.model_validate(body)
