"""``journeys segment preview``: the count, the count per shard and a sample of what a rule
selects now, from a rule file or a plan, with the compiled query on request."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter

from activities.audience import preview as preview_module
from activities.audience.preview import preview_segment
from activities.db.pool import DbPool
from journeys.rules import Rule
from journeys.sharding import shard_of
from tests.conftest import spawn_journeys


async def preview(cli_env: dict[str, str], *args: str) -> dict[str, object]:
    proc = await spawn_journeys("segment", "preview", *args, "--json", env=cli_env)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    result: dict[str, object] = json.loads(out)
    return result


async def test_preview_counts_per_shard_and_samples(
    pool: DbPool, cli_env: dict[str, str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    gold = [f"sp-{tag}-{n:03d}" for n in range(30)]
    await pool.executemany(
        "INSERT INTO users (user_id, attrs) VALUES ($1, $2)",
        [(u, {"batch": tag, "tier": "gold"}) for u in gold]
        + [(f"sp-{tag}-silver", {"batch": tag, "tier": "silver"})],
    )
    rule = {
        "all": [
            {"tag": "batch", "op": "eq", "value": tag},
            {"tag": "tier", "op": "eq", "value": "gold"},
        ]
    }
    rule_file = tmp_path / "rule.yaml"
    rule_file.write_text(yaml.safe_dump(rule))
    found = await preview(cli_env, str(rule_file), "--shards", "4", "--sample", "5", "--sql")
    assert found["total"] == 30
    assert found["per_shard"] == [sum(1 for u in gold if shard_of(u, 4) == k) for k in range(4)]
    assert found["sample"] == sorted(gold)[:5]
    params = found["params"]
    assert isinstance(params, list) and tag in params  # values are parameters
    assert tag not in str(found["sql"])

    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "id": "preview-plan",
                "name": "Preview",
                "shards": 2,
                "audience": {"source": "segment", "rule": rule},
                "entry": {"type": "immediate"},
                "steps": {"hello": {"type": "send", "channel": "push", "template": "hello"}},
            }
        )
    )
    by_plan = await preview(cli_env, str(plan))
    assert by_plan["total"] == 30 and len(by_plan["per_shard"]) == 2  # type: ignore[arg-type]


async def test_streamed_and_parallel_reads_agree(
    pool: DbPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the planner's estimate threshold the preview streams through a cursor instead of
    reading in one (parallel) query; both give the same count, shards and sample."""
    tag = uuid.uuid4().hex[:8]
    users = [f"ps-{tag}-{n:04d}" for n in range(700)]
    await pool.executemany(
        "INSERT INTO users (user_id, attrs) VALUES ($1, $2)", [(u, {"batch": tag}) for u in users]
    )
    rule = TypeAdapter(Rule).validate_python({"tag": "batch", "op": "eq", "value": tag})
    now = datetime.now(UTC)
    at_once = await preview_segment(pool, rule, now=now, shards=8, sample=7)
    monkeypatch.setattr(preview_module, "PARALLEL_UP_TO", 0)
    streamed = await preview_segment(pool, rule, now=now, shards=8, sample=7)
    assert (at_once.total, at_once.per_shard, at_once.sample) == (
        streamed.total,
        streamed.per_shard,
        streamed.sample,
    )
    assert at_once.total == 700 and at_once.sample == sorted(users)[:7]
    assert at_once.per_shard == [sum(1 for u in users if shard_of(u, 8) == k) for k in range(8)]
