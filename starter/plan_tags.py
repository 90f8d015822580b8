"""``journeys validate``'s check of a plan's rules against the tag registry."""

from __future__ import annotations

from activities.db import plan_store, queries, tag_store
from journeys.errors import Problem, ServiceUnavailable
from journeys.plan.models import Plan
from journeys.plan.rule_sites import plan_tags
from journeys.settings import Settings
from journeys.tags.check import rule_tag_problems

from .connect import database


async def registry_problems(settings: Settings, plan: Plan) -> tuple[list[Problem], str | None]:
    """What publishing ``plan`` would refuse about its tags, and a note when the registry
    could not be read (validate still checks the file offline; publish and launch always
    check the tags). A plan equal to its newest version publishes nothing, so there is
    nothing to refuse; a plan whose rules read no tag needs no database."""
    names = plan_tags(plan)
    if not names:
        return [], None
    try:
        async with database(settings) as pool:
            found = await tag_store.registry(pool, names)
            latest = await pool.fetchrow(queries.PLAN_LATEST, plan.id)
    except ServiceUnavailable as exc:
        return [], f"{NOT_CHECKED}: {exc}; publish and launch check them"
    if latest is not None and latest["checksum"] == plan_store.plan_checksum(plan):
        return [], None  # the newest version as it is: launching it publishes nothing
    return rule_tag_problems(plan, found, allow_disabled=False), None


NOT_CHECKED = "tags not checked against the registry"
