"""Bulk-load user profiles: a file COPYed into a staging table, then one upsert.

All or nothing: the rows go in one transaction, and a file with too many bad rows is refused
before the upsert, so nothing of it is stored (the staging table goes with the transaction).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import asyncpg

from activities.db import queries, tag_store
from activities.db.pool import DbPool
from journeys.errors import InvalidInput, Problem
from journeys.profile_file import CHUNK, COLUMNS, BadRow, ProfileRow, read_rows
from journeys.tags.fit import value_problem
from journeys.tags.model import TagDefinition

MAX_LISTED_BAD = 20


@dataclass
class ProfilesLoaded:
    """What a load did."""

    lines: int = 0
    new: int = 0
    updated: int = 0
    bad_count: int = 0
    bad: list[BadRow] = field(default_factory=list)
    """The first bad rows (at most 100), each with its line number."""


async def load_profiles(pool: DbPool, path: Path, *, max_bad_share: float = 0.01) -> ProfilesLoaded:
    """Load ``path`` into ``users``; raises :class:`InvalidInput` (nothing stored) when more
    than ``max_bad_share`` of its rows are bad or none is good."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return await _load_jsonl(pool, path, max_bad_share=max_bad_share)
    return await _load_csv(pool, path, max_bad_share=max_bad_share)


async def _load_csv(pool: DbPool, path: Path, *, max_bad_share: float) -> ProfilesLoaded:
    """CSV goes to PostgreSQL as it is (COPY into text columns) and is typed, checked and
    upserted there in one statement: parsing a million rows in Python cost 30x the COPY."""
    header = _header(path)
    columns = [f"c{n}" for n in range(len(header))]
    at = {name: columns[n] for n, name in enumerate(header)}
    attrs = [name for name in header if name not in ("user_id", *COLUMNS)]
    declared = await tag_store.attribute_types(pool, attrs)
    sql = queries.profile_csv_sql(
        user_id=at["user_id"],
        contact={name: at[name] for name in COLUMNS if name in at},
        attrs=[at[name] for name in attrs],
        types={at[n]: (d.type, d.values) for n, d in declared.items()},
    )
    check_params = [
        attrs[key] if isinstance(key, int) else declared[attrs[key[1]]].values
        for key in sql.check_params
    ]
    report = ProfilesLoaded()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries.profile_csv_stage(len(header)))
        try:
            await conn.copy_to_table(
                "profile_raw", source=path, columns=columns, format="csv", header=True
            )
        except asyncpg.PostgresError as exc:  # a ragged row, NUL, bytes that are not UTF-8
            problem = Problem("", f"cannot be read as CSV with this header: {exc}")
            raise InvalidInput(str(path), [problem]) from None
        await conn.execute(sql.check, *check_params)
        counts = await conn.fetchrow(queries.PROFILE_CSV_COUNTS)
        assert counts is not None
        report.lines, report.bad_count = int(counts["lines"]), int(counts["bad"])
        if report.bad_count:
            bad = await conn.fetch(queries.PROFILE_CSV_BAD)
            report.bad = [BadRow(int(r["line"]) + 1, str(r["reason"])) for r in bad]
        _check(str(path), report, share=max_bad_share)
        done = await conn.fetchrow(sql.upsert, *attrs)
        assert done is not None
        report.new, report.updated = int(done["new"]), int(done["updated"])
    return report


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader(handle), None)
    if not header or "user_id" not in header:
        raise InvalidInput(str(path), [Problem("line 1", "the header needs a user_id column")])
    if len(set(header)) != len(header):
        raise InvalidInput(str(path), [Problem("line 1", "a column name appears twice")])
    return header


async def _load_jsonl(pool: DbPool, path: Path, *, max_bad_share: float) -> ProfilesLoaded:
    report = ProfilesLoaded()
    # JSON Lines rows name their attributes row by row: any attribute a tag reads may come
    declared = await tag_store.attribute_types(pool)
    rows = (_typed(row, declared) for row in read_rows(path))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries.PROFILES_STAGE)
        while chunk := list(islice(rows, CHUNK)):
            good: list[tuple[object, ...]] = []
            for row in chunk:
                report.lines += 1
                if isinstance(row, BadRow):
                    report.bad_count += 1
                    if len(report.bad) < 100:
                        report.bad.append(row)
                else:
                    good.append(_record(row))
            if good:
                await conn.copy_records_to_table(
                    "profile_stage", records=good, columns=queries.PROFILES_STAGE_COLUMNS
                )
        _check(str(path), report, share=max_bad_share)
        counts = await conn.fetchrow(queries.PROFILES_UPSERT)
        assert counts is not None  # an aggregate always has its row
        report.new, report.updated = int(counts["new"]), int(counts["updated"])
    return report


def _typed(row: ProfileRow | BadRow, declared: dict[str, TagDefinition]) -> ProfileRow | BadRow:
    """``row``, or a bad row when an attribute does not fit the tag that declares its type."""
    if isinstance(row, BadRow):
        return row
    for name, value in row.attrs.items():
        definition = declared.get(name)
        if definition is not None and value is not None:
            problem = value_problem(definition, value)
            if problem is not None:
                return BadRow(row.line, f"{name}: {problem}")
    return row


def _record(row: ProfileRow) -> tuple[object, ...]:
    attrs = json.dumps(row.attrs, separators=(",", ":"), ensure_ascii=False)
    return (row.line, row.user_id, row.email, row.phone, row.timezone, attrs)


def _check(source: str, report: ProfilesLoaded, *, share: float) -> None:
    listed = [Problem(f"line {b.line}", b.reason) for b in report.bad[:MAX_LISTED_BAD]]
    good = report.lines - report.bad_count
    if good == 0:
        raise InvalidInput(source, [*listed, Problem("", "no profiles found")])
    allowed = math.ceil(share * report.lines - 1e-9)  # a small file may always lose one row
    if report.bad_count > allowed:
        summary = (
            f"{report.bad_count} of {report.lines} rows are bad "
            f"({100 * report.bad_count / report.lines:.1f}% > allowed {100 * share:.1f}%)"
        )
        raise InvalidInput(source, [*listed, Problem("", summary)])
