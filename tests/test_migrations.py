"""Migrations: in order, transactional, recorded, safe to run from two processes at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from activities.db.migrate import default_directory, migrate, read_migrations
from journeys.errors import MigrationError


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def test_project_migrations_apply_in_order_and_are_recorded(fresh_database_url: str) -> None:
    applied = await migrate(fresh_database_url)
    names = [m.name for m in read_migrations(default_directory())]
    assert applied == names
    rows = await _fetch(fresh_database_url, "SELECT name FROM schema_migrations ORDER BY version")
    assert [r["name"] for r in rows] == names
    tables = await _fetch(
        fresh_database_url,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    assert {"plan_versions", "users", "schema_migrations"} <= {r["tablename"] for r in tables}
    assert await migrate(fresh_database_url) == []


async def test_two_concurrent_runners_apply_each_migration_once(
    fresh_database_url: str, tmp_path: Path
) -> None:
    # Non-idempotent statements: a second application would fail on the duplicate table.
    directory = _write(
        tmp_path / "m",
        {
            "001_a.sql": "CREATE TABLE a (id int PRIMARY KEY);",
            "002_slow.sql": "SELECT pg_sleep(0.3); CREATE TABLE b (id int);",
            "003_c.sql": "INSERT INTO a VALUES (1);",
        },
    )
    first, second = await asyncio.gather(
        migrate(fresh_database_url, directory=directory),
        migrate(fresh_database_url, directory=directory),
    )
    assert sorted(first + second) == ["001_a.sql", "002_slow.sql", "003_c.sql"]
    assert [] in (first, second)
    rows = await _fetch(fresh_database_url, "SELECT count(*) AS n FROM a")
    assert rows[0]["n"] == 1


async def test_failing_migration_rolls_back_and_is_not_recorded(
    fresh_database_url: str, tmp_path: Path
) -> None:
    directory = _write(
        tmp_path / "m",
        {
            "001_ok.sql": "CREATE TABLE ok (id int);",
            "002_bad.sql": "CREATE TABLE half (id int); SELECT * FROM no_such_table;",
        },
    )
    with pytest.raises(asyncpg.UndefinedTableError):
        await migrate(fresh_database_url, directory=directory)
    recorded = await _fetch(fresh_database_url, "SELECT name FROM schema_migrations")
    assert [r["name"] for r in recorded] == ["001_ok.sql"]
    half = await _fetch(fresh_database_url, "SELECT to_regclass('half') AS t")
    assert half[0]["t"] is None
    (directory / "002_bad.sql").write_text("CREATE TABLE half (id int);")
    assert await migrate(fresh_database_url, directory=directory) == ["002_bad.sql"]


async def test_editing_an_applied_migration_is_refused(
    fresh_database_url: str, tmp_path: Path
) -> None:
    directory = _write(tmp_path / "m", {"001_a.sql": "CREATE TABLE a (id int);"})
    await migrate(fresh_database_url, directory=directory)
    (directory / "001_a.sql").write_text("CREATE TABLE a (id bigint);")
    with pytest.raises(MigrationError, match=r"001_a\.sql changed after it was applied"):
        await migrate(fresh_database_url, directory=directory)


def test_misnamed_and_duplicate_files_are_refused(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad", {"add_users.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match=r"NNN_name\.sql"):
        read_migrations(bad)
    dup = _write(tmp_path / "dup", {"001_a.sql": "SELECT 1;", "001_b.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match="share a number"):
        read_migrations(dup)
