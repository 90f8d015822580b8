"""The tag registry: its file, its lifecycle, and plans checked against it on publish."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.db import plan_store, tag_store
from activities.db.pool import DbPool
from journeys.errors import NotFound, PlanInvalid
from journeys.plan.models import Plan
from journeys.tags.model import TagsFile, check_tags_file
from tests.conftest import ROOT
from tests.tag_kit import publish_model

EXAMPLE = ROOT / "examples" / "welcome-blast.yaml"


def tags_file(tags: dict[str, Any]) -> TagsFile:
    model, problems = check_tags_file({"tags": tags})
    assert model is not None, problems
    return model


def plan_reading(
    plan_id: str, rule: dict[str, Any], *, branch: dict[str, Any] | None = None
) -> Plan:
    body = yaml.safe_load(EXAMPLE.read_text())
    body["id"] = plan_id
    body["audience"] = {"source": "segment", "rule": rule}
    if branch is not None:
        body["steps"] = {
            "check": {
                "type": "branch",
                "branches": [{"name": "b", "rule": branch, "next": "welcome"}],
            },
            **body["steps"],
        }
    return Plan.model_validate(body)


async def published(pool: DbPool, tags: dict[str, Any]) -> None:
    await publish_model(pool, tags_file(tags))


def test_tags_file_lists_every_problem_with_its_path() -> None:
    _, problems = check_tags_file(
        {
            "tags": {
                "level": {"type": "enum"},
                "spend": {
                    "type": "number",
                    "source": {"event": "paid", "aggregate": "sum", "within": "30d"},
                },
                "member": {"type": "string", "source": {"list": "vips"}},
                "odd": {"type": "colour"},
                "both": {"type": "bool", "source": {"list": "a", "field": "b"}},
                "plain": {"type": "string", "cache_ttl": "1m"},
                "bad name!": {"type": "string"},
            }
        }
    )
    found = {p.path: p.reason for p in problems}
    assert found["tags.level"] == "an enum tag declares its values"
    assert found["tags.spend.source.aggregate"] == "sum needs the number property it reads"
    assert "type bool" in found["tags.member"]
    assert "tags.odd.type" in found
    assert "one of the keys" in found["tags.both.source"]
    assert "computed tags" in found["tags.plain"]
    assert any(path.startswith("tags.bad name!") for path in found)


async def test_lifecycle_draft_test_publish_edit_disable(pool: DbPool) -> None:
    name = f"lvl_{uuid.uuid4().hex[:8]}"
    first = {name: {"type": "enum", "values": ["bronze", "gold"]}}
    assert [d.outcome for d in await tag_store.define(pool, tags_file(first))] == ["created"]
    assert [d.outcome for d in await tag_store.define(pool, tags_file(first))] == ["unchanged"]
    record = await tag_store.record(pool, name)
    assert (record.tag.state, record.tag.live) == ("draft", None)

    with pytest.raises(tag_store.TagRefused, match="test the draft first"):
        await tag_store.publish(pool, name)
    await tag_store.mark_tested(pool, name, draft=tags_file(first).tags[name])
    assert await tag_store.publish(pool, name) == 1
    record = await tag_store.record(pool, name)
    assert record.tag.state == "published" and record.tag.draft is None
    assert record.tag.live is not None and record.tag.live.values == ["bronze", "gold"]

    # a published tag keeps its type and its values; it may gain values, as a draft
    with pytest.raises(tag_store.TagRefused, match="keeps its type"):
        await tag_store.define(pool, tags_file({name: {"type": "string"}}))
    with pytest.raises(tag_store.TagRefused, match="bronze would be dropped"):
        await tag_store.define(pool, tags_file({name: {"type": "enum", "values": ["gold"]}}))
    grown = {name: {"type": "enum", "values": ["bronze", "gold", "platinum"]}}
    assert [d.outcome for d in await tag_store.define(pool, tags_file(grown))] == ["drafted"]
    record = await tag_store.record(pool, name)
    assert record.tag.live is not None and record.tag.live.values == ["bronze", "gold"]  # live
    assert record.tag.draft is not None and record.tag.draft.values == [
        "bronze",
        "gold",
        "platinum",
    ]
    with pytest.raises(tag_store.TagRefused, match="test the draft first"):
        await tag_store.publish(pool, name)  # the edit needs its own test
    await tag_store.mark_tested(pool, name, draft=tags_file(first).tags[name])
    with pytest.raises(tag_store.TagRefused, match="test the draft first"):
        await tag_store.publish(pool, name)  # a test of another draft does not count
    await tag_store.mark_tested(pool, name, draft=tags_file(grown).tags[name])
    assert await tag_store.publish(pool, name) == 2

    await tag_store.set_state(pool, name, "disabled")
    assert (await tag_store.record(pool, name)).tag.state == "disabled"
    await tag_store.set_state(pool, name, "published")
    assert (await tag_store.record(pool, name)).tag.state == "published"
    with pytest.raises(NotFound):
        await tag_store.record(pool, f"missing_{name}")


async def test_publish_checks_every_rule_against_the_registry(pool: DbPool) -> None:
    suffix = uuid.uuid4().hex[:8]
    level, score, note, via, draft = (
        f"{kind}_{suffix}" for kind in ("lvl", "score", "note", "via", "draft")
    )
    await published(
        pool,
        {
            level: {"type": "enum", "values": ["low", "high"]},
            score: {"type": "number"},
            note: {"type": "string"},
            via: {"type": "string", "source": {"field": "channel"}},
        },
    )
    await tag_store.define(pool, tags_file({draft: {"type": "bool"}}))
    rule = {
        "all": [
            {"tag": level, "op": "eq", "value": "medium"},
            {"tag": score, "op": "eq", "value": "many"},
            {"tag": note, "op": "gt", "value": 3},
            {"tag": via, "op": "eq", "value": "app"},
            {"tag": draft, "op": "eq", "value": True},
            {"tag": f"nothing_{suffix}", "op": "exists"},
        ]
    }
    plan = plan_reading(f"tagcheck-{suffix}", rule, branch={"tag": via, "op": "eq", "value": "app"})
    with pytest.raises(PlanInvalid) as refused:
        await plan_store.publish(pool, plan)
    found = {p.path: p.reason for p in refused.value.problems}
    base = "audience.rule.all"
    assert found[f"{base}.0.value"].startswith(
        '"medium" is not one of the declared values: low, high'
    )
    assert found[f"{base}.1.value"] == 'a number tag takes a number, got "many"'
    assert found[f"{base}.2.op"].startswith("op gt does not suit a string tag")
    assert "passed through at call time" in found[f"{base}.3.tag"]
    assert "is a draft" in found[f"{base}.4.tag"]
    assert "is not in the registry" in found[f"{base}.5.tag"]
    # a page rule may read the pass-through tag: only the segment's use is refused
    assert not any(path.startswith("steps.check") for path in found)
    assert len(found) == 6


async def test_disabled_tag_keeps_old_versions_and_refuses_new_ones(pool: DbPool) -> None:
    suffix = uuid.uuid4().hex[:8]
    tag = f"risk_{suffix}"
    await published(pool, {tag: {"type": "enum", "values": ["low", "high"]}})
    plan = plan_reading(f"disabled-{suffix}", {"tag": tag, "op": "eq", "value": "low"})
    first = await plan_store.publish(pool, plan)
    assert first.created and first.version == 1
    await tag_store.set_state(pool, tag, "disabled")

    again = await plan_store.publish(pool, plan)  # the same plan: the version that uses it
    assert (again.version, again.created) == (1, False)
    changed = plan.model_copy(update={"name": "Edited"})
    with pytest.raises(PlanInvalid, match="is disabled"):
        await plan_store.publish(pool, changed)
    rolled = await plan_store.rollback(pool, plan.id, to=1)  # restores a version that used it
    assert rolled.version == 2

    usage = await tag_store.usage(pool, tag)
    assert [(u.plan_id, u.version, u.newest) for u in usage] == [
        (plan.id, 2, True),
        (plan.id, 1, False),
    ]
    assert await tag_store.usage(pool, f"nobody_{suffix}") == []


def test_example_tags_file_is_valid() -> None:
    from journeys.tags.model import load_tags_file

    tags = load_tags_file(ROOT / "examples" / "tags.yaml")
    assert {"member_level", "risk_level", "orders_30d", "channel"} <= set(tags.tags)
    assert Path(ROOT / "tests" / "tags.yaml").exists()
