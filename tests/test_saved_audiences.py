"""Saved audiences made from sources: ``journeys audience save``, a plan's snapshot reused by
later runs while ``per_run`` is evaluated again, and shards lost in a real Redis restart
rebuilt from their record before a run reads them."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import yaml

from activities.audience.materialise import AudienceUnavailable
from activities.audience.saved import save_evaluated, saved_into, snapshot_name
from activities.audience.shard_sets import audience_info, check_audience, save_audience
from activities.db.pool import DbPool
from activities.runs import RunActivities
from journeys.contracts.run_setup import MaterialiseInput
from journeys.contracts.runs import AudienceRef
from journeys.names import audience_shard_key, run_audience_key
from journeys.plan.audience import SegmentAudience, SetAudience
from journeys.plan.models import Plan
from starter.stack.probes import free_port
from starter.stack.process import spawn
from starter.stack.services import RedisServer, wait_ready
from tests.conftest import ROOT, spawn_journeys

RULE = {"tag": "batch", "op": "eq", "value": None}


async def seed(pool: DbPool, batch: str, names: list[str]) -> list[str]:
    ids = [f"sa-{batch}-{name}" for name in names]
    await pool.executemany(
        "INSERT INTO users (user_id, attrs) VALUES ($1, $2)", [(u, {"batch": batch}) for u in ids]
    )
    return ids


def segment(batch: str) -> SegmentAudience:
    return SegmentAudience.model_validate({"rule": RULE | {"value": batch}})


async def keys_members(redis: aioredis.Redis, key: Callable[[int], str], shards: int) -> set[str]:
    found: set[str] = set()
    for k in range(shards):
        members: list[bytes] = await redis.zrange(key(k), 0, -1)  # type: ignore[assignment]
        found |= {m.decode() for m in members}
    return found


async def test_audience_save_rule_sql_and_sets(
    pool: DbPool, redis: aioredis.Redis, cli_env: dict[str, str], tmp_path: Path
) -> None:
    batch = f"b{uuid.uuid4().hex[:8]}"  # a bare hex id can read as a YAML float (1e5)
    ids = await seed(pool, batch, ["a", "b", "c"])
    rule_file = tmp_path / "rule.yaml"
    rule_file.write_text(yaml.safe_dump(RULE | {"value": batch}))
    rule_name, sql_name, diff_name = (f"{k}-{batch}" for k in ("rule", "sql", "diff"))

    async def journeys(*args: str) -> dict[str, Any]:
        proc = await spawn_journeys("audience", *args, "--json", env=cli_env)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        result: dict[str, Any] = json.loads(out)
        return result

    saved = await journeys("save", rule_name, "--rule", str(rule_file), "--shards", "4")
    assert (saved["total"], saved["shards"]) == (3, 4)
    assert saved["definition"]["audience"]["source"] == "segment"
    assert saved["evaluated_at"] is not None
    query = f"SELECT user_id FROM users WHERE user_id = '{ids[0]}'"
    assert (await journeys("save", sql_name, "--sql", query, "--shards", "4"))["total"] == 1
    diff = await journeys("save", diff_name, "--of", f"difference:{rule_name},{sql_name}")
    assert diff["total"] == 2
    key = lambda k: audience_shard_key(diff_name, k)  # noqa: E731
    assert await keys_members(redis, key, 16) == set(ids[1:])
    shown = await journeys("show", diff_name)
    assert shown["damaged_shards"] == [] and shown["source"].startswith("difference")
    # its members are kept in PostgreSQL too: a list tag over it reads them
    kept = await pool.fetch("SELECT user_id FROM audience_members WHERE audience = $1", diff_name)
    assert {r["user_id"] for r in kept} == set(ids[1:])
    # made of itself through another saved audience: refused, a rebuild would wait for ever
    with pytest.raises(AudienceUnavailable, match="made of itself"):
        await save_evaluated(
            redis,
            pool,
            name=rule_name,
            audience=SetAudience.model_validate(
                {"source": "union", "of": [{"source": "list", "name": diff_name}] * 2}
            ),
            shards=4,
        )

    # a shard lost from Redis: `audience show` names it, `audience rebuild` makes it again
    for shard in range(4):
        await redis.delete(audience_shard_key(rule_name, shard))
    damaged = (await journeys("show", rule_name))["damaged_shards"]
    assert damaged  # the shards that held its three users
    rebuilt = await journeys("rebuild", rule_name)
    assert rebuilt["total"] == 3
    assert (await journeys("show", rule_name))["damaged_shards"] == []

    proc = await spawn_journeys("audience", "save", "x", "--sql", "DELETE FROM users", env=cli_env)
    _, err = await proc.communicate()
    assert proc.returncode == 1 and "Traceback" not in err.decode()
    assert "--sql" in err.decode()


async def test_snapshot_is_reused_and_per_run_is_evaluated_again(
    pool: DbPool, redis: aioredis.Redis
) -> None:
    batch = f"b{uuid.uuid4().hex[:8]}"  # a bare hex id can read as a YAML float (1e5)
    first = set(await seed(pool, batch, ["a", "b"]))
    body = yaml.safe_load((ROOT / "examples" / "welcome-blast.yaml").read_text())
    activities = RunActivities(pool=pool, redis=redis)

    async def run(mode: str, n: int) -> set[str]:
        audience = {"source": "segment", "mode": mode, "rule": RULE | {"value": batch}}
        plan = Plan.model_validate(
            body | {"id": f"snap-{batch}", "audience": audience, "shards": 4}
        )
        run_id = f"plan/snap-{batch}/v1/{mode}-{n}"
        out = await activities.materialise_audience(
            MaterialiseInput(run_id=run_id, plan=plan, audience=AudienceRef())
        )
        found = await keys_members(redis, lambda k: run_audience_key(run_id, k), 4)
        assert sum(out.per_shard) == len(found)
        return found

    assert await run("snapshot", 1) == first
    assert await run("per_run", 1) == first
    later = set(await seed(pool, batch, ["c"]))
    assert await run("snapshot", 2) == first  # the snapshot taken by the first run
    assert await run("per_run", 2) == first | later  # evaluated again
    plan = Plan.model_validate(
        body
        | {
            "id": f"snap-{batch}",
            "shards": 4,
            "audience": {"source": "segment", "rule": RULE | {"value": batch}},
        }
    )
    assert plan.audience is not None
    info = await audience_info(pool, snapshot_name(plan.id, plan.audience))
    assert info.total == 2 and info.evaluated_at is not None


@pytest_asyncio.fixture(loop_scope="session")
async def private_redis(tmp_path: Path) -> AsyncIterator[tuple[aioredis.Redis, Any]]:
    """A Redis of this test's own, without an append-only file, and a way to restart it
    (kill -9, start again empty) as a machine failure would."""
    server = RedisServer(
        name="redis", host="127.0.0.1", port=free_port(), home=tmp_path, append_only=False
    )
    server.prepare()
    procs: list[subprocess.Popen[bytes]] = []

    async def start() -> None:
        procs.append(spawn(server.command(), log=server.log_path))
        await wait_ready(server, limit=timedelta(seconds=30))

    async def restart() -> None:
        procs[-1].kill()  # SIGKILL: no shutdown save, nothing left behind
        procs[-1].wait()
        await start()

    await start()
    client = aioredis.Redis(port=server.port)
    try:
        yield client, restart
    finally:
        await client.aclose()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def test_shards_lost_in_a_redis_restart_are_rebuilt(
    pool: DbPool, private_redis: tuple[aioredis.Redis, Any]
) -> None:
    redis, restart = private_redis
    batch = f"b{uuid.uuid4().hex[:8]}"  # a bare hex id can read as a YAML float (1e5)
    ruled = set(await seed(pool, batch, ["a", "b", "c", "d"]))
    uploaded = [f"up-{batch}-{n}" for n in range(500)]
    names = {k: f"{k}-{batch}" for k in ("rule", "upload", "old")}
    await save_evaluated(redis, pool, name=names["rule"], audience=segment(batch), shards=4)
    await save_audience(redis, pool, name=names["upload"], ids=uploaded, shards=8, source="f.csv")
    await save_audience(redis, pool, name=names["old"], ids=uploaded[:3], shards=2, source=None)
    # as an upload from before the ids were kept in PostgreSQL: nothing to rebuild it from
    await pool.execute("DELETE FROM audience_members WHERE audience = $1", names["old"])

    await restart()
    assert await redis.dbsize() == 0  # everything is gone, as after a crash without AOF
    for name in names.values():
        assert await check_audience(redis, await audience_info(pool, name)), name

    async def into_run(name: str) -> set[str]:
        run = f"run-{name}"
        await saved_into(
            redis, pool, name=name, shards=4, target=lambda k: run_audience_key(run, k)
        )
        return await keys_members(redis, lambda k: run_audience_key(run, k), 4)

    assert await into_run(names["rule"]) == ruled  # the rule, evaluated again
    assert await into_run(names["upload"]) == set(uploaded)  # the ids kept in PostgreSQL
    for name in (names["rule"], names["upload"]):
        assert await check_audience(redis, await audience_info(pool, name)) == []
    damaged = await check_audience(redis, await audience_info(pool, names["old"]))
    assert damaged
    with pytest.raises(AudienceUnavailable) as lost:
        await into_run(names["old"])
    assert {p.path for p in lost.value.problems} == {f"shard {k}" for k in damaged}
    assert "upload it again" in str(lost.value)
