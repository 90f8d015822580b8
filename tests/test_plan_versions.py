"""Publishing, listing and rolling back plan versions through the real `journeys` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from activities.db import plan_store
from activities.db.pool import DbPool
from journeys.plan.models import Plan
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "welcome-blast.yaml"


def journeys(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def variant(tmp_path: Path, plan_id: str, *, template: str | None = None) -> Path:
    body = yaml.safe_load(EXAMPLE.read_text())
    body["id"] = plan_id
    if template is not None:
        body["name"] = template
    path = tmp_path / f"{plan_id}-{template or 'base'}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_publish_versions_rollback(cli_env: dict[str, str], tmp_path: Path) -> None:
    first = variant(tmp_path, "versioned-plan")
    second = variant(tmp_path, "versioned-plan", template="Second name")

    published = json.loads(journeys(cli_env, "publish", str(first), "--json").stdout)
    assert (published["version"], published["created"]) == (1, True)
    again = json.loads(journeys(cli_env, "publish", str(first), "--json").stdout)
    assert (again["version"], again["created"]) == (1, False)  # unchanged: no new version
    assert json.loads(journeys(cli_env, "publish", str(second), "--json").stdout)["version"] == 2

    rolled = json.loads(
        journeys(cli_env, "rollback", "versioned-plan", "--to", "1", "--json").stdout
    )
    assert rolled["version"] == 3
    listed = json.loads(journeys(cli_env, "versions", "versioned-plan", "--json").stdout)
    assert [v["version"] for v in listed] == [1, 2, 3]
    assert listed[2]["checksum"] == listed[0]["checksum"] != listed[1]["checksum"]
    assert listed[2]["note"] == "rollback to v1"


async def test_a_version_never_changes(pool: DbPool, tmp_path: Path) -> None:
    plan = Plan.model_validate(yaml.safe_load(EXAMPLE.read_text()) | {"id": "pinned-plan"})
    v1 = await plan_store.publish(pool, plan)
    edited = plan.model_copy(update={"name": "Edited after launch"})
    v2 = await plan_store.publish(pool, edited)
    assert (v1.version, v2.version) == (1, 2)
    assert (await plan_store.load(pool, "pinned-plan", 1)) == plan
    assert (await plan_store.load(pool, "pinned-plan", 2)).name == "Edited after launch"


def test_errors_are_one_line_without_traceback(cli_env: dict[str, str], tmp_path: Path) -> None:
    missing = journeys(cli_env, "versions", "no-such-plan")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: plan 'no-such-plan' has no published version"

    down = dict(cli_env, DATABASE_URL="postgresql://postgres@127.0.0.1:1/journeys")
    unreachable = journeys(down, "versions", "x")
    assert unreachable.returncode == 1
    assert unreachable.stderr.count("\n") == 1 and "Traceback" not in unreachable.stderr
    assert unreachable.stderr.startswith("error: cannot reach PostgreSQL at ")

    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("type: send", "type: sned"))
    invalid = journeys(cli_env, "publish", str(bad))
    assert invalid.returncode == 1
    assert 'unknown step type "sned"' in invalid.stderr
    assert "Traceback" not in invalid.stderr
