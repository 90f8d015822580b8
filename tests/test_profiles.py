"""``journeys profiles load`` / ``show`` against the real PostgreSQL: CSV and JSON Lines, typed
cells, merges, bad rows with their line numbers, and a refused file that stores nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from activities.db.pool import DbPool
from activities.profiles import load_profiles
from journeys.errors import InvalidInput
from journeys.profile_file import cell_value
from journeys.tags.model import check_tags_file
from tests.conftest import spawn_journeys
from tests.tag_kit import publish_model


def test_cells_are_typed_as_rules_read_them() -> None:
    assert [cell_value(t) for t in ["", "true", "false", "3", "-2", "2.5", "1e3", "007", "x"]] == [
        None, True, False, 3, -2, 2.5, 1000.0, "007", "x",
    ]  # fmt: skip


CELLS = ["", "true", "false", "True", "3", "-2", "2.5", "1e3", "007", "x", "-", "1e400", " 4"]


async def test_the_database_types_cells_as_cell_value_does(pool: DbPool, tmp_path: Path) -> None:
    user = f"pt-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "cells.csv"
    header = ",".join(["user_id", *(f"a{n}" for n in range(len(CELLS)))])
    path.write_text(f"{header}\n{user}," + ",".join(CELLS) + "\n")
    await load_profiles(pool, path)
    attrs = (await stored(pool, [user]))[user]["attrs"]
    expected = {f"a{n}": cell_value(c) for n, c in enumerate(CELLS) if cell_value(c) is not None}
    assert attrs == expected


async def stored(pool: DbPool, ids: list[str]) -> dict[str, dict[str, object]]:
    rows = await pool.fetch(
        "SELECT user_id, email, phone, timezone, attrs FROM users WHERE user_id = ANY($1)", ids
    )
    return {r["user_id"]: dict(r) for r in rows}


async def test_csv_then_jsonl_load_merge_and_last_line_wins(pool: DbPool, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    a, b = f"pf-{tag}-a", f"pf-{tag}-b"
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "user_id,email,timezone,tier,orders,vip\n"
        f"{a},a@example.com,Asia/Shanghai,gold,3,true\n"
        f"{b},,,silver,0,false\n"
        f"{b},b@example.com,,silver,1,\n"  # the last line of b wins; its empty vip keeps nothing
    )
    first = await load_profiles(pool, csv_file)
    assert (first.lines, first.new, first.updated, first.bad_count) == (3, 2, 0, 0)
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(
        json.dumps({"user_id": a, "attrs": {"orders": 4, "tags": ["x", "y"]}}) + "\n"
        + json.dumps({"user_id": b, "phone": "+15550100", "city": "Lyon"}) + "\n"
    )  # fmt: skip
    second = await load_profiles(pool, jsonl)
    assert (second.new, second.updated) == (0, 2)
    found = await stored(pool, [a, b])
    assert found[a]["email"] == "a@example.com" and found[a]["timezone"] == "Asia/Shanghai"
    assert found[a]["attrs"] == {"tier": "gold", "orders": 4, "vip": True, "tags": ["x", "y"]}
    assert found[b]["email"] == "b@example.com" and found[b]["phone"] == "+15550100"
    assert found[b]["attrs"] == {"tier": "silver", "orders": 1, "city": "Lyon"}


async def test_bad_rows_are_named_and_too_many_refuse_the_file(
    pool: DbPool, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    good = [f"pb-{tag}-{n}" for n in range(200)]
    lines = ["user_id,timezone,note"] + [f"{u},UTC,ok" for u in good]
    lines[50] = ",UTC,no id"  # line 51
    lines[80] = f"pb-{tag}-tz,Mars/Olympus,bad zone"  # line 81
    path = tmp_path / "some-bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput) as refused:
        await load_profiles(pool, path, max_bad_share=0.005)
    reasons = [str(p) for p in refused.value.problems]
    assert reasons[0].startswith("line 51: user_id is missing")
    assert reasons[1].startswith("line 81: timezone") and "2 of 200 rows are bad" in reasons[-1]
    assert await stored(pool, good) == {}  # all or nothing

    loaded = await load_profiles(pool, path, max_bad_share=0.01)
    assert loaded.new == 198 and [b.line for b in loaded.bad] == [51, 81]
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text(
        json.dumps({"user_id": f"ph-{tag}", "name": "'; DROP TABLE users; --"}) + "\n"
        + '{"user_id": "x\\u0000y"}\n' + '{"user_id": "ok", "a": NaN}\n'
    )  # fmt: skip
    with pytest.raises(InvalidInput) as refused:
        await load_profiles(pool, hostile, max_bad_share=0.3)
    assert [p.path for p in refused.value.problems[:2]] == ["line 2", "line 3"]
    assert "2 of 3 rows are bad" in str(refused.value.problems[-1])
    await load_profiles(pool, hostile, max_bad_share=0.7)
    found = await stored(pool, [f"ph-{tag}"])
    assert found[f"ph-{tag}"]["attrs"] == {"name": "'; DROP TABLE users; --"}  # data, not SQL
    assert await pool.fetchval("SELECT count(*) FROM users WHERE user_id = ANY($1)", good) == 198


async def test_cli_loads_and_shows(cli_env: dict[str, str], tmp_path: Path) -> None:
    user = f"pc-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "one.csv"
    path.write_text(f"user_id,email,level\n{user},c@example.com,7\n")
    loaded = await spawn_journeys("profiles", "load", str(path), "--json", env=cli_env)
    out, err = await loaded.communicate()
    assert loaded.returncode == 0, err.decode()
    assert json.loads(out)["new"] == 1
    shown = await spawn_journeys("profiles", "show", user, "--json", env=cli_env)
    out, err = await shown.communicate()
    assert shown.returncode == 0, err.decode()
    assert json.loads(out)["attrs"] == {"level": 7}
    missing = await spawn_journeys("profiles", "show", f"{user}-nobody", env=cli_env)
    _, err = await missing.communicate()
    assert missing.returncode == 1 and b"has no profile" in err


async def test_registry_tags_type_their_columns(pool: DbPool, tmp_path: Path) -> None:
    s = uuid.uuid4().hex[:8]
    score, code, level, flag, day, items = (
        f"{k}_{s}" for k in ("score", "code", "lvl", "flag", "day", "items")
    )
    model, problems = check_tags_file(
        {
            "tags": {
                score: {"type": "number"},
                code: {"type": "string"},
                level: {"type": "enum", "values": ["low", "high"]},
                flag: {"type": "bool"},
                day: {"type": "datetime"},
                items: {"type": "list"},
            }
        }
    )
    assert model is not None, problems
    await publish_model(pool, model)
    header = f"user_id,{score},{code},{level},{flag},{day},{items},free_{s}"
    good = [f"rt-{s}-{n},{n},00{n},low,true,2026-01-0{n + 1},a|b,{n}" for n in range(4)]
    bad = [
        f"rt-{s}-x1,many,1,low,true,2026-01-01,a,1",
        f"rt-{s}-x2,1,1,medium,true,2026-01-01,a,1",
        f"rt-{s}-x3,1,1,low,yes,2026-01-01,a,1",
        f"rt-{s}-x4,1,1,low,true,tomorrow,a,1",
    ]
    path = tmp_path / "typed.csv"
    path.write_text("\n".join([header, *good, *bad]) + "\n")
    loaded = await load_profiles(pool, path, max_bad_share=0.5)
    assert [(b.line, b.reason) for b in loaded.bad] == [
        (6, f'{score}: "many" is not a number'),
        (7, f'{level}: "medium" is not one of its declared values'),
        (8, f'{flag}: "yes" is not true or false'),
        (9, f'{day}: "tomorrow" is not a date or a date-time'),
    ]
    row = await pool.fetchrow("SELECT attrs FROM users WHERE user_id = $1", f"rt-{s}-2")
    assert row is not None
    # the registry decides: a string tag keeps "002" as text, an untyped column reads a number
    assert row["attrs"] == {
        score: 2, code: "002", level: "low", flag: True, day: "2026-01-03", items: ["a", "b"],
        f"free_{s}": 2,
    }  # fmt: skip
    with pytest.raises(InvalidInput, match="bad"):
        await load_profiles(pool, path, max_bad_share=0.1)

    jsonl = tmp_path / "typed.jsonl"
    jsonl.write_text(
        json.dumps({"user_id": f"rt-{s}-j1", score: 1, code: "x", level: "high"}) + "\n"
        + json.dumps({"user_id": f"rt-{s}-j2", score: "1"}) + "\n"
        + json.dumps({"user_id": f"rt-{s}-j3", level: "medium"}) + "\n"
    )  # fmt: skip
    loaded = await load_profiles(pool, jsonl, max_bad_share=0.7)
    assert [(b.line, b.reason.split(":")[0]) for b in loaded.bad] == [(2, score), (3, level)]
