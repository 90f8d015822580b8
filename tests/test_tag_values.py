"""Computed and aliased tags: segments (SQL) and pages (facts) read the same values; computed
values are cached for the tag's TTL; ``journeys tags`` drives the registry end to end."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml
from pydantic import TypeAdapter

from activities.db import tag_store
from activities.db.pool import DbPool
from activities.journey.facts import load_facts
from journeys.plan.rule_sites import rule_tags
from journeys.rule_eval import evaluate
from journeys.rule_sql import segment_query
from journeys.rules import Rule
from journeys.tag_sql import registry_reader
from journeys.tags.model import check_tags_file
from tests.conftest import ROOT, spawn_journeys
from tests.journey_kit import seed_profiles
from tests.tag_kit import publish_model

RULE = TypeAdapter(Rule)
NOW = datetime.now(UTC).replace(microsecond=0)


async def publish(pool: DbPool, tags: dict[str, Any]) -> None:
    model, problems = check_tags_file({"tags": tags})
    assert model is not None, problems
    await publish_model(pool, model)


async def selected_by_sql(pool: DbPool, rule: Rule) -> set[str]:
    definitions = await tag_store.live_definitions(pool, rule_tags([rule]))
    query, params = segment_query(rule, now=NOW, read_tag=registry_reader(definitions))
    return {row[0] for row in await pool.fetch(query, *params)}


async def selected_on_pages(
    pool: DbPool, redis: aioredis.Redis, rule: Rule, users: list[str]
) -> set[str]:
    facts = await load_facts(pool, users, rules=[rule], now=NOW, redis=redis)
    return {u for u in users if evaluate(rule, facts[u], now=NOW)}


async def test_segments_and_pages_agree_on_computed_tags(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    s = uuid.uuid4().hex[:8]
    users = [f"tv-{s}-{n}" for n in range(8)]
    await seed_profiles(
        pool,
        {
            u: {"attrs": {"batch": s, f"rank_{s}": ("gold", "silver")[n % 2]}}
            for n, u in enumerate(users)
        },
    )
    event = f"paid_{s}"
    rows: list[tuple[str, str, datetime, dict[str, object]]] = []
    for n, user in enumerate(users):
        for k in range(n % 4):  # 0..3 events each, one of them too old for the window
            age = timedelta(days=40) if k == 2 else timedelta(days=k + 1)
            rows.append((user, event, NOW - age, {"amount": 10 * (n + k)}))
    rows.append((users[1], event, NOW - timedelta(hours=1), {"amount": "lots"}))  # not a number
    await pool.executemany(
        "INSERT INTO events (user_id, name, ts, props) VALUES ($1, $2, $3, $4)", rows
    )
    await pool.executemany(
        "INSERT INTO audience_members (audience, user_id) VALUES ($1, $2)",
        [(f"vips-{s}", u) for u in users[::3]],
    )
    orders, spend, vip, level = (f"{k}_{s}" for k in ("orders", "spend", "vip", "level"))
    await publish(
        pool,
        {
            orders: {"type": "number", "source": {"event": event, "within": "30d"}},
            spend: {
                "type": "number",
                "source": {
                    "event": event,
                    "aggregate": "sum",
                    "property": "amount",
                    "within": "30d",
                },
                "cache_ttl": "0s",
            },
            vip: {"type": "bool", "source": {"list": f"vips-{s}"}},
            level: {
                "type": "enum",
                "values": ["gold", "silver"],
                "source": {"attribute": f"rank_{s}"},
            },
        },
    )
    batch = {"tag": "batch", "op": "eq", "value": s}
    rules = [
        {"tag": orders, "op": "gte", "value": 2},
        {"tag": orders, "op": "eq", "value": 0},
        {"tag": spend, "op": "gt", "value": 50},
        {"not": {"tag": spend, "op": "exists"}},
        {"tag": vip, "op": "eq", "value": True},
        {
            "any": [
                {"tag": level, "op": "eq", "value": "gold"},
                {"not": {"tag": vip, "op": "ne", "value": False}},
            ]
        },
    ]
    seen: list[set[str]] = []
    for body in rules:
        rule = RULE.validate_python({"all": [batch, body]})
        by_sql = await selected_by_sql(pool, rule)
        assert by_sql == await selected_on_pages(pool, redis, rule, users), body
        seen.append(by_sql)
    # the values are the computed ones, not stand-ins that agree by being empty
    counts = {u: sum(1 for k in range(n % 4) if k != 2) for n, u in enumerate(users)}
    counts[users[1]] += 1  # its event without a number amount still counts
    assert seen[0] == {u for u, c in counts.items() if c >= 2}
    assert seen[1] == {u for u, c in counts.items() if c == 0}
    assert seen[4] == set(users[::3])
    assert seen[5] == {
        u for n, u in enumerate(users) if n % 2 == 0 or n % 3 != 0
    }  # gold, or not a member


async def test_a_tag_reads_its_source_not_the_attribute_of_its_name(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    """A tag reading another attribute has no value where that attribute is absent, even when
    the profile holds an attribute named like the tag: segments and pages alike."""
    s = uuid.uuid4().hex[:8]
    level, source = f"lvl_{s}", f"tier_{s}"
    own, reads = f"al-{s}-own", f"al-{s}-reads"
    await seed_profiles(
        pool,
        {
            own: {"attrs": {"batch": s, level: "gold"}},  # the tag's name, not its source
            reads: {"attrs": {"batch": s, source: "gold"}},
        },
    )
    await publish(pool, {level: {"type": "string", "source": {"attribute": source}}})
    for body in (
        {"tag": level, "op": "eq", "value": "gold"},
        {"not": {"tag": level, "op": "exists"}},
    ):
        rule = RULE.validate_python({"all": [{"tag": "batch", "op": "eq", "value": s}, body]})
        by_sql = await selected_by_sql(pool, rule)
        assert by_sql == await selected_on_pages(pool, redis, rule, [own, reads]), body
    assert await selected_by_sql(pool, rule) == {own}  # the last rule: no value for `own`


async def test_computed_values_are_cached_for_their_ttl(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    s = uuid.uuid4().hex[:8]
    user, event = f"tc-{s}", f"visit_{s}"
    cached, fresh = f"cached_{s}", f"fresh_{s}"
    await seed_profiles(pool, {user: {"attrs": {}}})
    source = {"event": event, "within": "1d"}
    await publish(
        pool,
        {
            cached: {"type": "number", "source": source, "cache_ttl": "1h"},
            fresh: {"type": "number", "source": source, "cache_ttl": "0s"},
        },
    )

    async def values() -> tuple[Any, Any]:
        rule = RULE.validate_python(
            {"all": [{"tag": cached, "op": "exists"}, {"tag": fresh, "op": "exists"}]}
        )
        facts = await load_facts(pool, [user], rules=[rule], now=NOW, redis=redis)
        return facts[user].attrs[cached], facts[user].attrs[fresh]

    async def visit() -> None:
        await pool.execute(
            "INSERT INTO events (user_id, name, ts, props) VALUES ($1, $2, $3, '{}')",
            user,
            event,
            NOW - timedelta(minutes=5),
        )

    await visit()
    assert await values() == (1, 1)
    await visit()
    assert await values() == (1, 2)  # the cached tag answers from Redis until its TTL ends
    await publish(pool, {cached: {"type": "number", "source": source, "cache_ttl": "2h"}})
    assert await values() == (2, 2)  # a new live version retires the cached values


async def journeys(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await spawn_journeys(*args, env=env)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_tags_commands_define_test_publish_usage(
    pool: DbPool, cli_env: dict[str, str], tmp_path: Path
) -> None:
    s = uuid.uuid4().hex[:8]
    tag, user = f"tier_{s}", f"cli-{s}"
    await seed_profiles(pool, {user: {"attrs": {"tier_attr": "gold"}}})
    file = tmp_path / "tags.yaml"
    definition = {
        "type": "enum",
        "values": ["gold", "silver"],
        "source": {"attribute": "tier_attr"},
    }
    file.write_text(yaml.safe_dump({"tags": {tag: definition}}))

    code, out, err = await journeys(cli_env, "tags", "define", str(file), "--json")
    assert code == 0, err
    assert json.loads(out) == [{"name": tag, "outcome": "created"}]
    code, _, err = await journeys(cli_env, "tags", "publish", tag)
    assert code == 1 and "test the draft first" in err and "Traceback" not in err
    code, out, err = await journeys(cli_env, "tags", "test", tag, "--user", user, "--json")
    assert code == 0, err
    assert json.loads(out) | {} == {
        "tag": tag,
        "user": user,
        "tested": "draft",
        "value": "gold",
        "problem": None,
    }
    code, out, err = await journeys(cli_env, "tags", "publish", tag, "--json")
    assert code == 0 and json.loads(out) == {"tag": tag, "version": 1}, err

    plan = yaml.safe_load((ROOT / "examples" / "welcome-blast.yaml").read_text())
    plan["id"] = f"tags-cli-{s}"
    plan["audience"] = {"source": "segment", "rule": {"tag": tag, "op": "eq", "value": "bronze"}}
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(plan))
    channels = ROOT / "examples" / "channels.yaml"
    code, out, _ = await journeys(
        cli_env, "validate", str(plan_file), "--channels", str(channels), "--json"
    )
    checked = json.loads(out)
    assert code == 1 and checked["problems"] == [
        {
            "path": "audience.rule.value",
            "reason": '"bronze" is not one of the declared values: gold, silver',
        }
    ]
    plan["audience"]["rule"]["value"] = "gold"
    plan_file.write_text(yaml.safe_dump(plan))
    code, _, err = await journeys(cli_env, "validate", str(plan_file), "--channels", str(channels))
    assert code == 0, err
    code, _, err = await journeys(cli_env, "publish", str(plan_file), "--channels", str(channels))
    assert code == 0, err
    code, out, err = await journeys(cli_env, "tags", "usage", tag, "--json")
    assert json.loads(out) == [{"plan": plan["id"], "version": 1, "newest": True}], err
    code, out, _ = await journeys(cli_env, "tags", "list", "--json")
    listed = {row["name"]: row for row in json.loads(out)}
    assert listed[tag]["state"] == "published" and listed[tag]["live_version"] == 1
    code, out, err = await journeys(cli_env, "tags", "show", tag, "--json")
    assert code == 0 and json.loads(out)["live"]["values"] == ["gold", "silver"], err
    for command, state in (("disable", "disabled"), ("enable", "published")):
        code, _, err = await journeys(cli_env, "tags", command, tag)
        assert code == 0, err
        code, out, _ = await journeys(cli_env, "tags", "show", tag, "--json")
        assert json.loads(out)["state"] == state
