"""``journeys validate``'s check of a plan's rules against the tag registry, and of its
``decide`` steps against the published decision instances."""

from __future__ import annotations

from activities.db import plan_store, queries
from journeys.errors import Problem, ServiceUnavailable
from journeys.plan.models import Plan
from journeys.plan.rule_sites import plan_tags
from journeys.plan.steps import DecideStep
from journeys.settings import Settings

from .connect import database


async def registry_problems(settings: Settings, plan: Plan) -> tuple[list[Problem], str | None]:
    """What publishing ``plan`` would refuse about its tags, and a note when the registry
    could not be read (validate still checks the file offline; publish and launch always
    check the tags). A plan equal to its newest version publishes nothing, so there is
    nothing to refuse; a plan whose rules read no tag needs no database."""
    if not plan_tags(plan) and not any(isinstance(s, DecideStep) for s in plan.steps.values()):
        return [], None
    try:
        async with database(settings) as pool:
            latest = await pool.fetchrow(queries.PLAN_LATEST, plan.id)
            if latest is not None and latest["checksum"] == plan_store.plan_checksum(plan):
                return [], None  # the newest version as it is: launching it publishes nothing
            return await plan_store.tag_problems(pool, plan), None
    except ServiceUnavailable as exc:
        return [], f"{NOT_CHECKED}: {exc}; publish and launch check them"


NOT_CHECKED = "tags not checked against the registry"
