"""``journeys suppress`` through the real CLI against the session's Redis and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from activities.db.pool import DbPool
from journeys.names import suppression_key
from tests.conftest import spawn_journeys


async def test_add_list_import_remove_and_sync(
    pool: DbPool, redis: aioredis.Redis, cli_env: dict[str, str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    a, b, c, tester = (f"cli{tag}-{n}" for n in ("a", "b", "c", "tester"))

    async def journeys(*args: str, ok: bool = True) -> Any:
        proc = await spawn_journeys("suppress", *args, "--json", env=cli_env)
        out, err = await proc.communicate()
        if not ok:
            assert proc.returncode == 1 and "Traceback" not in err.decode()
            return err.decode()
        assert proc.returncode == 0, err.decode()
        return json.loads(out)

    async def marks(user: str) -> set[str]:
        found = await redis.smembers(suppression_key(user))
        return {m.decode() if isinstance(m, bytes) else m for m in found}

    assert await journeys("add", a, "--reason", "complaint") == {"added": 1, "users": 1}
    assert await journeys("add", a) == {"added": 0, "users": 1}  # already there
    assert await journeys("add", b, "--channel", "sms") == {"added": 1, "users": 1}
    assert await journeys("add", tester, "--allow") == {"added": 1, "users": 1}
    ids = tmp_path / "black.txt"
    ids.write_text(f"{c}\n{a}\n")
    assert await journeys("import", str(ids)) == {"added": 1, "users": 2}
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{c}\nhas space\n")
    assert "line 2" in await journeys("import", str(bad), ok=False)
    assert "--channel" in await journeys("add", a, "--channel", "nosuch", ok=False)
    assert (await marks(a), await marks(b), await marks(tester)) == ({"*"}, {"sms"}, {"+allow"})
    listed = await journeys("list", "--user", a)
    assert [(e["channel"], e["reason"], e["source"]) for e in listed] == [("*", "complaint", "cli")]
    assert await journeys("remove", b, "--channel", "sms") == {"removed": 1, "users": 1}
    assert await marks(b) == set()
    # Redis lost its copy, and holds a mark PostgreSQL never had: sync mends both
    await redis.delete(suppression_key(a))
    await redis.sadd(suppression_key(b), "*")
    assert (await journeys("sync"))["marks"] >= 3
    assert (await marks(a), await marks(b), await marks(c)) == ({"*"}, set(), {"*"})
    rows = await pool.fetch("SELECT user_id FROM suppressions WHERE user_id = ANY($1)", [a, c])
    assert {r["user_id"] for r in rows} == {a, c}
