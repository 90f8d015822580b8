"""The decision engine against real PostgreSQL and Redis, over HTTP and the CLI: seed 004's
instalments test, versions that switch whole, a disabled tag in a live strategy, the value
cache, and malformed requests answered 4xx."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import yaml
from scipy.stats import binomtest

from activities.db import decision_store, tag_store
from activities.db.pool import DbPool
from activities.decisions import DecisionService
from journeys.ab import bucket
from journeys.arm_stats import ArmCounts, compare_arms
from journeys.decisions.contracts import DecideRequest, FieldValue
from journeys.decisions.model import Instance, Scene
from journeys.errors import DecisionRefused
from journeys.names import tag_value_key
from journeys.settings import Settings
from journeys.tags.model import TagsFile
from starter.client import Journeys
from tests.conftest import serving_ingest, spawn_journeys
from tests.decision_kit import load, own_scene_and_instance, seed_users
from tests.tag_kit import publish_model

FIELDS: dict[str, FieldValue] = {"channel": "app", "amount": 199}


async def journeys(env: dict[str, str], *args: str, ok: bool = True) -> str:
    """The real CLI's output and errors; fails the test on the wrong exit or a traceback."""
    proc = await spawn_journeys(*args, env=env)
    out, err = await proc.communicate()
    assert (proc.returncode == 0) is ok, err.decode()
    assert "Traceback" not in err.decode()
    return out.decode() + err.decode()


class Clock:
    """A monotonic clock the test moves (the service's caches read it)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_seed_004s_instalments_test_end_to_end(
    pool: DbPool, redis: aioredis.Redis, stack_settings: Settings
) -> None:
    scene = Scene.model_validate(load("payment.scene.yaml"))
    instance = Instance.model_validate(load("checkout-instalments.yaml"))
    await decision_store.define_scene(pool, scene)
    await decision_store.save_draft(pool, instance)
    version = await decision_store.publish(pool, instance.instance)
    prefix = f"d{uuid.uuid4().hex[:6]}"
    # 10,000 low-risk users split, and 500 each of the others
    risks = ["low"] * 10_000 + ["medium"] * 500 + ["high"] * 500
    users = {f"{prefix}-{n:05d}": {"risk_level": risk} for n, risk in enumerate(risks)}
    await seed_users(pool, users)
    service = DecisionService(pool=pool, redis=redis)
    answers = {}
    for user in users:
        request = DecideRequest(instance=instance.instance, user_id=user, fields=FIELDS)
        answers[user] = await service.decide(request)
    low = [u for u, a in users.items() if a["risk_level"] == "low"]
    groups = Counter(answers[u].group for u in low)
    # 50/50 by mmh3(salt + user) mod 10000: each user's group is the bucket's, and the split
    # is within statistical bounds of half (deterministic: the ids are fixed)
    for user in low:
        expected = "control" if bucket("instalments-2026-12", user) < 5_000 else "test"
        assert (answers[user].strategy, answers[user].group) == ("low-risk", expected)
        assert answers[user].decision == (
            {"instalments": 3}
            if expected == "control"
            else {"instalments": 6, "interest_free": True}
        )
    assert binomtest(groups["test"], len(low), 0.5).pvalue > 0.001, groups
    medium = {answers[u].model_dump()["decision"]["instalments"] for u in users if u not in low}
    assert medium == {1, 3}  # medium-risk users 3, high-risk the default 1
    assert {answers[u].version for u in users} == {version.version}
    await service.recorder.flush()

    sample = low[:60] + [u for u in users if u not in low][:40]
    async with serving_ingest(stack_settings) as url, Journeys(url) as client:
        for user in sample:  # the same answer over HTTP, and again: stable per user
            over_http = await client.decide(instance.instance, user_id=user, fields=FIELDS)
            assert over_http == answers[user]
        async with httpx.AsyncClient(base_url=url) as http:
            body = {"instance": instance.instance, "user_id": low[0], "fields": FIELDS,
                    "explain": True}  # fmt: skip
            explained = (await http.post("/v1/decide", json=body)).json()
            assert explained["strategy"] == "low-risk"
            assert [s["holds"] for s in explained["explain"]] == [False, True]
            assert explained["explain"][1]["conditions"][0]["value"] == "low"
            metrics = (await http.get("/metrics")).text
            assert "journeys_ingest_decide_cache_misses" in metrics
    # recorded in batches: the service's 10,000 and the server's 101 (flushed as it stopped)
    rows = await pool.fetch(
        "SELECT grp, count(*) AS n FROM decisions WHERE instance_id = $1 AND user_id LIKE $2"
        " GROUP BY grp",
        instance.instance,
        f"{prefix}-%",
    )
    recorded = {r["grp"]: r["n"] for r in rows}
    http_test = sum(1 for u in sample if answers[u].group == "test") + (
        answers[low[0]].group == "test"
    )
    assert sum(recorded.values()) == len(users) + len(sample) + 1
    assert recorded["test"] == groups["test"] + http_test
    # the examples' segments read every profile: leave none of these behind
    await pool.execute("DELETE FROM users WHERE user_id LIKE $1", f"{prefix}-%")


async def test_a_call_sees_one_whole_version_through_publish_and_rollback(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    _, v1 = await own_scene_and_instance(pool, medium=3)
    await decision_store.save_draft(pool, v1)
    await decision_store.publish(pool, v1.instance)
    user = f"m{uuid.uuid4().hex[:6]}"
    await seed_users(pool, {user: {"risk_level": "medium"}})
    clock = Clock()
    service = DecisionService(pool=pool, redis=redis, clock=clock)
    expected = {1: 3, 2: 6, 3: 3}  # v3 is the rollback to v1
    seen: list[tuple[int, Any]] = []
    done = asyncio.Event()
    reached = {version: asyncio.Event() for version in expected}

    async def caller() -> None:
        while not done.is_set():
            request = DecideRequest(instance=v1.instance, user_id=user, fields=FIELDS)
            answer = await service.decide(request)
            seen.append((answer.version, answer.model_dump()["decision"]["instalments"]))
            reached[answer.version].set()
            await asyncio.sleep(0)

    callers = [asyncio.create_task(caller()) for _ in range(4)]
    v2 = v1.model_copy(deep=True)
    body = v2.model_dump(mode="json")
    body["strategies"][2]["decision"] = {"instalments": 6}
    await decision_store.save_draft(pool, Instance.model_validate(body))
    await decision_store.publish(pool, v1.instance, note="six for medium")
    clock.now += 2  # the live version is re-read after INSTANCE_TTL
    await asyncio.wait_for(reached[2].wait(), timeout=30)
    rolled = await decision_store.rollback(pool, v1.instance, to=1)
    clock.now += 2
    await asyncio.wait_for(reached[3].wait(), timeout=30)
    done.set()
    await asyncio.gather(*callers)
    assert rolled.version == 3 and rolled.note == "rollback to v1"
    assert all(instalments == expected[version] for version, instalments in seen)
    assert {version for version, _ in seen} == {1, 2, 3}
    listed = await decision_store.versions(pool, v1.instance)
    assert [(v.version, v.note) for v in listed] == [
        (1, None), (2, "six for medium"), (3, "rollback to v1")
    ]  # fmt: skip
    await service.recorder.flush()


async def test_a_disabled_tag_keeps_its_live_strategy_working(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    risk = f"risk_{uuid.uuid4().hex[:6]}"
    tags = TagsFile.model_validate({"tags": {risk: {"type": "enum", "values": ["low", "medium"]}}})
    await publish_model(pool, tags)
    _, instance = await own_scene_and_instance(pool, risk_tag=risk)
    await decision_store.save_draft(pool, instance)
    await decision_store.publish(pool, instance.instance)
    user = f"t{uuid.uuid4().hex[:6]}"
    await seed_users(pool, {user: {risk: "medium"}})
    await tag_store.set_state(pool, risk, "disabled")
    service = DecisionService(pool=pool, redis=redis)
    answer = await service.decide(DecideRequest(instance=instance.instance, user_id=user,
                                                fields=FIELDS))  # fmt: skip
    assert (answer.strategy, answer.model_dump()["decision"]) == ("medium-risk", {"instalments": 3})
    # a new draft may not start reading it
    try:
        await decision_store.save_draft(pool, instance.model_copy(update={"description": "v2"}))
    except DecisionRefused as exc:
        assert [p.path for p in exc.problems] == ["strategies.1.rule.tag", "strategies.2.rule.tag"]
    else:
        raise AssertionError("a draft reading a disabled tag was saved")
    await service.recorder.flush()


async def test_tag_values_are_cached_for_their_ttl(pool: DbPool, redis: aioredis.Redis) -> None:
    _, instance = await own_scene_and_instance(pool)
    await decision_store.save_draft(pool, instance)
    await decision_store.publish(pool, instance.instance)
    user = f"c{uuid.uuid4().hex[:6]}"
    await seed_users(pool, {user: {"risk_level": "medium"}})
    clock = Clock()
    service = DecisionService(pool=pool, redis=redis, clock=clock)
    request = DecideRequest(instance=instance.instance, user_id=user, fields=FIELDS)
    assert (await service.decide(request)).strategy == "medium-risk"
    await seed_users(pool, {user: {"risk_level": "high"}})  # the risk system changes its mind
    clock.now += 170  # within the tag's 3 minutes: the cached value answers
    assert (await service.decide(request)).strategy == "medium-risk"
    assert (service.stats.hits, service.stats.misses) == (1, 1)
    # the value is shared in Redis for the same 3 minutes: another process would find it
    version = (await tag_store.registry(pool, ["risk_level"]))["risk_level"].live_version
    shared = tag_value_key("risk_level", version, user)
    assert 0 < await redis.pttl(shared) <= 180_000
    other = DecisionService(pool=pool, redis=redis, clock=clock)
    assert (await other.decide(request)).strategy == "medium-risk"
    assert (other.stats.misses, other.stats.shared_hits) == (1, 1)
    clock.now += 20  # past them (here, and in Redis, whose clock the test cannot move)
    await redis.delete(shared)
    assert (await service.decide(request)).strategy is None
    assert (service.stats.hits, service.stats.misses) == (1, 2)
    await other.recorder.flush()
    await service.recorder.flush()


def malformed(rng: random.Random, instance: str) -> tuple[bytes | dict[str, Any], set[int]]:
    """A request that must be refused, and the statuses that may refuse it."""
    good: dict[str, Any] = {"instance": instance, "user_id": "u-1", "fields": dict(FIELDS)}
    kind = rng.randrange(12)
    body = json.loads(json.dumps(good))
    if kind == 0:
        return rng.choice([b"", b"{", b"[1, 2", b"\xff\xfe", b"null"]), {422}
    if kind == 1:
        del body["fields"][rng.choice(["channel", "amount"])]
    elif kind == 2:
        body["fields"]["amount"] = rng.choice(["199", True, [1], {"a": 1}])
    elif kind == 3:
        body["fields"]["channel"] = rng.choice([3, False, ["app"]])
    elif kind == 4:
        body["fields"][f"extra{rng.randrange(99)}"] = 1
    elif kind == 5:
        del body["user_id"]
    elif kind == 6:
        body["user_id"] = rng.choice(["", "a" * 201, "bad\x00id", 42, None])
    elif kind == 7:
        body["instance"] = rng.choice(["nosuch-instance", "x" * 10])
        return body, {404}
    elif kind == 8:
        body["instance"] = rng.choice(["Bad Id", "", 7, None, "a/b"])
    elif kind == 9:
        body[rng.choice(["verbose", "user", "Fields"])] = 1
    elif kind == 10:
        body["explain"] = rng.choice(["yes", 1, None])
    else:
        body["fields"] = rng.choice([[], "channel=app", None, {"bad name": 1}])
    return body, {422}


async def test_a_thousand_malformed_requests_get_clear_4xx_answers(
    pool: DbPool, stack_settings: Settings
) -> None:
    _, instance = await own_scene_and_instance(pool)
    await decision_store.save_draft(pool, instance)
    await decision_store.publish(pool, instance.instance)
    rng = random.Random(4)
    async with serving_ingest(stack_settings) as url, httpx.AsyncClient(base_url=url) as http:
        for _ in range(1_000):
            body, allowed = malformed(rng, instance.instance)
            if isinstance(body, bytes):
                answer = await http.post(
                    "/v1/decide", content=body, headers={"content-type": "application/json"}
                )
            else:
                answer = await http.post("/v1/decide", json=body)
            assert answer.status_code in allowed, (body, answer.text)
            errors = answer.json()["errors"]
            assert errors and all(e["field"] and e["reason"] for e in errors), (body, errors)
        good = {"instance": instance.instance, "user_id": "u-1", "fields": FIELDS}
        assert (await http.post("/v1/decide", json=good)).status_code == 200


async def test_the_cli_publishes_lists_rolls_back_and_decides(
    pool: DbPool, cli_env: dict[str, str], tmp_path: Path
) -> None:
    _, instance = await own_scene_and_instance(pool)
    user = f"cli{uuid.uuid4().hex[:6]}"
    await seed_users(pool, {user: {"risk_level": "medium"}})
    path = tmp_path / "instance.yaml"
    path.write_text(yaml.safe_dump(instance.model_dump(mode="json")))
    broken = tmp_path / "broken.yaml"
    body = instance.model_dump(mode="json")
    body["strategies"][1]["experiment"]["groups"][0]["share"] = 40
    broken.write_text(yaml.safe_dump(body))

    refused = await journeys(cli_env, "decisions", "validate", str(broken), ok=False)
    assert "strategies.1.experiment: group shares sum to 90, must be 100" in refused
    assert "published version 1" in await journeys(cli_env, "decisions", "publish", str(path))
    decided = json.loads(
        await journeys(cli_env, "decide", instance.instance, "--user", user,
                       "--field", "channel=app", "--field", "amount=199", "--json")
    )  # fmt: skip
    assert decided == {"instance": instance.instance, "version": 1,
                       "decision": {"instalments": 3}, "strategy": "medium-risk",
                       "group": None}  # fmt: skip
    missing = await journeys(cli_env, "decide", instance.instance, "--user", user, ok=False)
    assert "fields.amount: missing: scene" in missing and "fields.channel" in missing
    await journeys(cli_env, "decisions", "rollback", instance.instance, "--to", "1")
    listed = json.loads(
        await journeys(cli_env, "decisions", "versions", instance.instance, "--json")
    )
    assert [(v["version"], v["note"]) for v in listed] == [(1, None), (2, "rollback to v1")]


async def test_the_report_compares_each_group_on_the_scenes_metric(
    pool: DbPool, redis: aioredis.Redis, cli_env: dict[str, str]
) -> None:
    _, instance = await own_scene_and_instance(pool)
    await decision_store.save_draft(pool, instance)
    await decision_store.publish(pool, instance.instance)
    prefix = f"r{uuid.uuid4().hex[:6]}"
    users = {f"{prefix}-{n:03d}": {"risk_level": "low" if n < 300 else "high"} for n in range(400)}
    await seed_users(pool, users)
    service = DecisionService(pool=pool, redis=redis)
    group_of = {}
    for user in users:
        for _ in range(2):  # two calls each: users are counted once, calls twice
            answer = await service.decide(
                DecideRequest(instance=instance.instance, user_id=user, fields=FIELDS)
            )
        group_of[user] = answer.group
    await service.recorder.flush()
    control = [u for u, g in group_of.items() if g == "control"]
    test = [u for u, g in group_of.items() if g == "test"]
    took = control[:30] + test[:60]  # converted: loan_taken within the 7-day window
    before, late = control[30:40], test[60:70]  # before the decision, or 8 days after
    now = datetime.now(UTC)
    rows = [(u, now + timedelta(hours=1)) for u in took]
    rows += [(u, now - timedelta(days=1)) for u in before]
    rows += [(u, now + timedelta(days=8)) for u in late]
    await pool.execute(
        "INSERT INTO events (user_id, name, ts, props, routed_at)"
        " SELECT u, 'loan_taken', t, '{}'::jsonb, now() FROM unnest($1::text[], $2::timestamptz[])"
        " AS x(u, t)",
        [u for u, _ in rows],
        [t for _, t in rows],
    )
    proc = await spawn_journeys("decisions", "report", instance.instance, "--json", env=cli_env)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    groups = {(g["strategy"], g["group"]): (g["users"], g["calls"]) for g in report["groups"]}
    assert groups == {
        ("low-risk", "control"): (len(control), 2 * len(control)),
        ("low-risk", "test"): (len(test), 2 * len(test)),
        (None, None): (100, 200),  # the high-risk users got the default
    }
    low = next(m for m in report["metrics"] if m["strategy"] == "low-risk")
    assert low["metric"] == "loan_taken"
    arms = {a["arm"]: a for a in low["groups"]}
    assert (arms["control"]["converted"], arms["test"]["converted"]) == (30, 60)
    expected = compare_arms([
        ArmCounts(arm="control", control=True, users=len(control), converted=30),
        ArmCounts(arm="test", users=len(test), converted=60),
    ])[1]  # fmt: skip
    rates = (60 / len(test) - 30 / len(control)) / (30 / len(control))
    assert arms["test"]["lift"] == pytest.approx(rates) == pytest.approx(expected.lift)
    assert arms["test"]["p_value"] == pytest.approx(expected.p_value)
    assert arms["control"]["control"] and arms["control"]["lift"] is None
    await pool.execute("DELETE FROM users WHERE user_id LIKE $1", f"{prefix}-%")


async def test_item_tags_read_the_catalog(
    pool: DbPool, redis: aioredis.Redis, cli_env: dict[str, str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    brand = f"brand_{tag}"
    item_tag = {"type": "string", "kind": "item", "source": {"attribute": "brand"}}
    await publish_model(pool, TagsFile.model_validate({"tags": {brand: item_tag}}))
    scene = Scene.model_validate({"scene": f"shelf-{tag}", "keys": ["user", "item"],
                                  "decision_schema": {"type": "integer"}})  # fmt: skip
    await decision_store.define_scene(pool, scene)
    instance = Instance.model_validate({
        "instance": f"shelf-{tag}", "scene": scene.scene, "default": 1,
        "strategies": [{"name": "acme", "rule": {"tag": brand, "op": "eq", "value": "acme"},
                        "decision": 12}],
    })  # fmt: skip
    await decision_store.save_draft(pool, instance)
    await decision_store.publish(pool, instance.instance)

    bad = tmp_path / "bad.jsonl"
    bad.write_text(f'{{"id": "sku-{tag}-9", "attrs": {{"brand": "x"}}}}\n{{"attrs": {{}}}}\n[1]\n')
    refused = await journeys(cli_env, "catalog", "load", "item", str(bad), ok=False)
    assert "line 2: id is missing" in refused and "line 3: not a JSON object" in refused
    good = tmp_path / "items.jsonl"
    good.write_text(
        f'{{"id": "sku-{tag}-1", "attrs": {{"brand": "acme", "price": 99}}}}\n'
        f'{{"id": "sku-{tag}-2", "brand": "other"}}\n'
    )
    assert "2 items stored" in await journeys(cli_env, "catalog", "load", "item", str(good))
    assert not await pool.fetchval(  # the bad file stored nothing, not even its good line
        "SELECT count(*) FROM catalog WHERE key = $1", f"sku-{tag}-9"
    )
    shown = json.loads(
        await journeys(cli_env, "tags", "test", brand, "--item", f"sku-{tag}-1", "--live", "--json")
    )
    assert shown["value"] == "acme" and shown["item"] == f"sku-{tag}-1"
    service = DecisionService(pool=pool, redis=redis)
    for item, strategy, decision in (
        (f"sku-{tag}-1", "acme", 12), (f"sku-{tag}-2", None, 1), (f"sku-{tag}-404", None, 1)
    ):  # fmt: skip
        request = DecideRequest(instance=instance.instance, user_id="u-1", item_id=item)
        answer = await service.decide(request)
        assert (answer.strategy, answer.decision) == (strategy, decision), item
    try:
        await service.decide(DecideRequest(instance=instance.instance, user_id="u-1"))
    except DecisionRefused as exc:
        assert [p.path for p in exc.problems] == ["item_id"]
    else:
        raise AssertionError("a call without the scene's item id was answered")
    await service.recorder.flush()
