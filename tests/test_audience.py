"""Audience files, shard sets and saved audiences against the real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from activities.audience.shard_sets import (
    audience_info,
    check_audience,
    copy_into_run,
    group_by_shard,
    load_file_into_run,
    save_audience,
    write_shards,
)
from activities.db.pool import DbPool
from journeys.audience_file import (
    BadLine,
    ParsedAudience,
    check_user_id,
    parse_audience_lines,
    read_audience_file,
)
from journeys.errors import InvalidInput, NotFound, Problem
from journeys.names import audience_shard_key, run_audience_key, shard_tag
from journeys.sharding import shard_of
from tests.conftest import ROOT


def parse_bytes(tmp_path: Path, data: bytes, **options: Any) -> ParsedAudience:
    path = tmp_path / f"{uuid.uuid4().hex}.csv"
    path.write_bytes(data)
    return read_audience_file(path, **options)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ids_for(count: int, prefix: str = "user") -> list[str]:
    return [f"{prefix}-{i:07d}" for i in range(count)]


# ---- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "ids", "header"),
    [
        pytest.param(
            b"name,user_id,plan\nAnn,u1,gold\nBob,u2,free\n",
            ["u1", "u2"],
            "name,user_id,plan",
            id="csv-user_id-column-in-the-middle",
        ),
        pytest.param(b"NAME,User_ID\nAnn,u1\n", ["u1"], "NAME,User_ID", id="csv-header-any-case"),
        pytest.param(b"u1,Ann\nu2,Bob\n", ["u1", "u2"], None, id="csv-without-header"),
        pytest.param(
            b"User Id,name\nu1,Ann\n", ["u1"], "User Id,name", id="csv-first-row-invalid-is-header"
        ),
        pytest.param(b"user_id\tname\nu1\tAnn\nu2\tBob\n", ["u1", "u2"], "user_id\tname", id="tsv"),
        pytest.param(b"u1\nu2\nu3", ["u1", "u2", "u3"], None, id="one-per-line"),
        pytest.param(b"user_id\nu1\nu2\n", ["u1", "u2"], "user_id", id="one-column-with-header"),
        pytest.param(
            b"# exported today, 2 users\n\nu1\n   \n# note, with a comma\nu2\n\n",
            ["u1", "u2"],
            None,
            id="blanks-and-comments",
        ),
        pytest.param(b"\xef\xbb\xbfuser_id\nu1\n", ["u1"], "user_id", id="bom-and-header"),
        pytest.param(b"\xef\xbb\xbfu1\nu2\n", ["u1", "u2"], None, id="bom-without-header"),
        pytest.param(b"\xef\xbb\xbfuser_id,x\r\nu1,a\r\n", ["u1"], "user_id,x", id="bom-csv-crlf"),
        pytest.param(b"u1\r\nu2\r\n\r\nu3\r\n", ["u1", "u2", "u3"], None, id="crlf"),
        pytest.param(b"u1\ru2\r", ["u1", "u2"], None, id="old-mac-cr"),
        pytest.param(b'"u1"\n\'u2\'\n  " u3 "  \n', ["u1", "u2", "u3"], None, id="quoted-lines"),
        pytest.param(
            b'user_id,name\n"u1","Doe, Ann"\n"u2",Bob\n',
            ["u1", "u2"],
            "user_id,name",
            id="csv-quoted",
        ),
        pytest.param(
            b"o'brien\nacct#42\n", ["o'brien", "acct#42"], None, id="inner-quote-and-hash"
        ),
        pytest.param(b"u1,\n,\n,,\nu2,x\n", ["u1", "u2"], None, id="csv-empty-rows-are-blank"),
        pytest.param("ünï-1\n用户2\n".encode(), ["ünï-1", "用户2"], None, id="unicode-ids"),
    ],
)
def test_formats(tmp_path: Path, data: bytes, ids: list[str], header: str | None) -> None:
    parsed = parse_bytes(tmp_path, data)
    assert (parsed.ids, parsed.header, parsed.bad, parsed.duplicates) == (ids, header, [], 0)
    assert parsed.lines == len(ids)


def test_bad_lines_one_per_line(tmp_path: Path) -> None:
    lines = [
        "user_id",  # 1: header
        "u1",  # 2
        "",  # 3: blank
        "bad id",  # 4
        "# comment",  # 5
        '""',  # 6
        "x" * 129,  # 7
        "u\x01x",  # 8
        "u2",  # 9
        "tab\there",  # 10: not CSV: the format follows the first data line
        "u\u200bzero-width",  # 11
    ]
    parsed = parse_bytes(tmp_path, "\n".join(lines).encode(), max_bad_share=1.0)
    assert parsed.ids == ["u1", "u2"]
    assert parsed.lines == 8
    assert parsed.bad == [
        BadLine(4, "bad id", "whitespace inside user id"),
        BadLine(6, '""', "empty user id"),
        BadLine(7, "x" * 129, "user id longer than 128 characters"),
        BadLine(8, "u\x01x", "control character inside user id"),
        BadLine(10, "tab\there", "whitespace inside user id"),
        BadLine(11, "u\u200bzero-width", "control character inside user id"),
    ]


def test_bad_lines_csv(tmp_path: Path) -> None:
    data = b"# export\nname,user_id\nAnn,u1\nBob\nCid,\nDee, \nEve,u 2\nFay,u3\n"
    parsed = parse_bytes(tmp_path, data, max_bad_share=1.0)
    assert parsed.ids == ["u1", "u3"]
    assert parsed.lines == 6
    assert parsed.bad == [
        BadLine(4, "Bob", "missing user_id column value"),
        BadLine(5, "Cid,", "empty user id"),
        BadLine(6, "Dee, ", "empty user id"),
        BadLine(7, "Eve,u 2", "whitespace inside user id"),
    ]


def test_duplicates_are_dropped_in_first_seen_order() -> None:
    parsed = parse_audience_lines(["u3", "u1", "u3", "u2", "u1", '"u2"'], source="t")
    assert (parsed.ids, parsed.duplicates, parsed.lines) == (["u3", "u1", "u2"], 3, 6)


def lines_with_bad(total: int, bad_at: list[int]) -> list[str]:
    return [f"bad {n}" if n in bad_at else f"u{n}" for n in range(1, total + 1)]


def test_bad_share_threshold() -> None:
    # 100 data lines, 1% allowed: one bad line passes, two do not
    one = parse_audience_lines(lines_with_bad(100, [5]), source="f.txt", max_bad_share=0.01)
    assert [b.line for b in one.bad] == [5] and len(one.ids) == 99
    with pytest.raises(InvalidInput) as info:
        parse_audience_lines(lines_with_bad(100, [5, 9]), source="f.txt", max_bad_share=0.01)
    assert info.value.source == "f.txt"
    assert info.value.problems == [
        Problem("line 5", "whitespace inside user id"),
        Problem("line 9", "whitespace inside user id"),
        Problem("", "2 of 100 lines are bad (2.0% > allowed 1.0%)"),
    ]
    # 7% of 100 is 7.000000000000001 in floats: still seven lines allowed
    bad7 = [3, 11, 20, 30, 40, 50, 60]
    assert len(parse_audience_lines(lines_with_bad(100, bad7), source="f", max_bad_share=0.07).bad)
    with pytest.raises(InvalidInput):
        parse_audience_lines(lines_with_bad(100, [*bad7, 70]), source="f", max_bad_share=0.07)
    # a small file may always lose one line: 1 of 50 is 2%, but not a whole line beyond 1%
    assert len(parse_audience_lines(lines_with_bad(50, [7]), source="f").ids) == 49
    with pytest.raises(InvalidInput):
        parse_audience_lines(lines_with_bad(50, [7]), source="f", max_bad_share=0.0)


def test_error_lists_at_most_twenty_bad_lines() -> None:
    bad_at = list(range(2, 61, 2))  # 30 bad of 60 (a bad first line would be a header)
    with pytest.raises(InvalidInput) as info:
        parse_audience_lines(lines_with_bad(60, bad_at), source="f")
    problems = info.value.problems
    assert [p.path for p in problems[:20]] == [f"line {n}" for n in bad_at[:20]]
    assert problems[20:] == [Problem("", "30 of 60 lines are bad (50.0% > allowed 1.0%)")]


@pytest.mark.parametrize(
    "data", [b"", b"\n\n", b"# only a comment\n", b"user_id\n", b"\xef\xbb\xbf\r\n"]
)
def test_no_ids_is_an_error(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_bytes(tmp_path, data)
    assert info.value.problems[-1] == Problem("", "no user ids found")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_bytes(tmp_path, b"u1\nu2\n\xff\xfe\n")
    assert info.value.problems == [Problem("line 3", "not UTF-8 text")]
    with pytest.raises(InvalidInput, match="cannot read file"):
        read_audience_file(tmp_path / "missing.csv")


def test_fast_path_agrees_with_line_by_line_checks() -> None:
    rng = random.Random(7)
    oddities = ["", "# c", "bad id", '"q1"', "x" * 200, "dup-1", " pad ", "a\x00b", "é"]
    lines = ["first"]  # (a bad first line would be taken for a header)
    lines += [rng.choice(oddities) if rng.random() < 0.01 else f"id-{i}" for i in range(20_000)]
    lines += ["dup-1"]
    parsed = parse_audience_lines(lines, source="t", max_bad_share=1.0)
    expected: list[str] = []
    bad: list[int] = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        value, reason = check_user_id(line)
        if reason is None:
            expected.append(value)
        else:
            bad.append(number)
    assert parsed.ids == list(dict.fromkeys(expected))
    assert [b.line for b in parsed.bad] == bad
    assert parsed.duplicates == len(expected) - len(set(expected))


# ---- shard sets ------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def scratch(redis: aioredis.Redis) -> AsyncIterator[list[str]]:
    """Keys a test registers here are deleted afterwards."""
    keys: list[str] = []
    yield keys
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.delete(key)
    await pipe.execute()


def run_keys(run_id: str, shards: int, scratch: list[str]) -> Callable[[int], str]:
    scratch.extend(run_audience_key(run_id, k) for k in range(shards))
    return partial(run_audience_key, run_id)


def audience_keys(name: str, scratch: list[str]) -> Callable[[int], str]:
    scratch.extend(audience_shard_key(name, k) for k in range(1024))
    return partial(audience_shard_key, name)


async def members(redis: aioredis.Redis, key: str) -> list[str]:
    found: list[bytes] = await redis.zrange(key, 0, -1)  # type: ignore[assignment]
    return [m.decode() for m in found]


async def assert_sharded(
    redis: aioredis.Redis, ids: list[str], *, shards: int, key: Callable[[int], str]
) -> None:
    """Shard k holds exactly the ids with shard_of(id) == k, in lexicographic order."""
    for k in range(shards):
        assert await members(redis, key(k)) == sorted(i for i in ids if shard_of(i, shards) == k)


def test_group_by_shard_matches_shard_of() -> None:
    ids = ids_for(3000)
    for shards in (1, 2, 16, 1024):
        groups = group_by_shard(ids, shards)
        assert len(groups) == shards
        assert sorted(map(str, chain.from_iterable(groups))) == sorted(ids)
        assert all(shard_of(str(i), shards) == k for k, g in enumerate(groups) for i in g)


async def test_write_shards_puts_each_id_in_its_shard_only(
    redis: aioredis.Redis, scratch: list[str]
) -> None:
    ids = ids_for(5000, unique("w"))
    key = run_keys(unique("run"), 16, scratch)
    counts = await write_shards(redis, ids, shards=16, key=key, batch_size=64)
    assert sum(counts) == 5000
    assert counts == [sum(1 for i in ids if shard_of(i, 16) == k) for k in range(16)]
    for user_id in ids[:300]:
        pipe = redis.pipeline(transaction=False)
        for k in range(16):
            pipe.zscore(key(k), user_id)
        scores = await pipe.execute()
        home = shard_of(user_id, 16)
        assert scores[home] == 0.0
        assert [s for k, s in enumerate(scores) if k != home] == [None] * 15
    await assert_sharded(redis, ids, shards=16, key=key)
    # writing again adds nothing (sets), and pages by rank are stable
    page = await redis.zrange(key(3), 10, 19)
    assert await write_shards(redis, ids[::-1], shards=16, key=key) == counts
    assert await redis.zrange(key(3), 10, 19) == page


async def test_save_audience_replaces_the_earlier_upload(
    redis: aioredis.Redis, pool: DbPool, scratch: list[str]
) -> None:
    name = unique("aud")
    key = audience_keys(name, scratch)
    first = ids_for(2000, "old") + ids_for(500, "both")
    info = await save_audience(redis, pool, name=name, ids=first, shards=16, source="a.csv")
    assert (info.name, info.shards, info.total, info.source) == (name, 16, 2500, "a.csv")
    assert info.updated_at is not None

    second = ids_for(500, "both") + ids_for(300, "new")
    info = await save_audience(redis, pool, name=name, ids=second, shards=16, source="b.csv")
    assert info.total == 800
    await assert_sharded(redis, second, shards=16, key=key)
    assert await audience_info(pool, name) == info

    # fewer shards: the old shard keys 4..15 are gone, and so is every staging key
    third = ["x1", "x2", "x3"]
    info = await save_audience(redis, pool, name=name, ids=third, shards=4, source=None)
    prefix = audience_shard_key(name, 0).removesuffix(shard_tag(0))
    found = sorted([k.decode() async for k in redis.scan_iter(match=f"{prefix}*", count=1000)])
    assert found == sorted(key(k) for k in range(4) if info.per_shard[k])
    assert len(found) < 4  # three ids: at least one empty shard, and it has no key
    await assert_sharded(redis, third, shards=4, key=key)

    # more shards again
    info = await save_audience(redis, pool, name=name, ids=second, shards=64, source=None)
    await assert_sharded(redis, second, shards=64, key=key)
    assert (await audience_info(pool, name)).per_shard == info.per_shard


async def test_names_and_missing_audiences(redis: aioredis.Redis, pool: DbPool) -> None:
    for bad in ("Upper", "-dash", "", "a b", "x" * 64, "a:b"):
        with pytest.raises(InvalidInput):
            await save_audience(redis, pool, name=bad, ids=["u1"], shards=16, source=None)
    with pytest.raises(InvalidInput):
        await save_audience(redis, pool, name=unique("a"), ids=["u1"], shards=12, source=None)
    with pytest.raises(NotFound):
        await audience_info(pool, unique("missing"))


async def test_check_audience_finds_a_lost_shard(
    redis: aioredis.Redis, pool: DbPool, scratch: list[str]
) -> None:
    name = unique("chk")
    key = audience_keys(name, scratch)
    info = await save_audience(redis, pool, name=name, ids=ids_for(1000), shards=8, source=None)
    assert await check_audience(redis, info) == []
    await redis.delete(key(5))  # what a Redis restart without persistence does
    assert await check_audience(redis, await audience_info(pool, name)) == [5]


async def test_copy_into_run_same_shards_and_resharded(
    redis: aioredis.Redis, pool: DbPool, scratch: list[str]
) -> None:
    name = unique("cp")
    source = audience_keys(name, scratch)
    ids = ids_for(3000, unique("c"))
    info = await save_audience(redis, pool, name=name, ids=ids, shards=16, source=None)

    for shards in (16, 4, 64, 16):
        run_id = unique("run")
        dest = run_keys(run_id, shards, scratch)
        await redis.zadd(dest(0), {"stale-member": 0})  # a failed earlier attempt's leftovers
        copy = partial(
            copy_into_run, redis, source_key=source, source_shards=16, shards=shards, run_id=run_id
        )
        counts = await copy()
        assert await copy() == counts  # a retried activity ends in the same state
        assert sum(counts) == 3000
        if shards == 16:
            assert counts == info.per_shard
        await assert_sharded(redis, ids, shards=shards, key=dest)

    other = partial(run_audience_key, unique("run"))
    scratch.extend(other(k) for k in range(2))
    counts = await copy_into_run(redis, source_key=source, source_shards=16, shards=2, target=other)
    assert sum(counts) == 3000
    await assert_sharded(redis, ids, shards=2, key=other)
    with pytest.raises(ValueError):
        await copy_into_run(redis, source_key=source, source_shards=16, shards=2)


async def test_load_file_into_run(
    redis: aioredis.Redis, tmp_path: Path, scratch: list[str]
) -> None:
    ids = ids_for(1200, unique("f"))
    path = tmp_path / "aud.csv"
    path.write_text("user_id,plan\n" + "".join(f"{i},gold\n" for i in ids) + "bad id,x\n")
    run_id = unique("run")
    key = run_keys(run_id, 8, scratch)
    await redis.zadd(key(1), {"stale": 0})
    parsed, counts = await load_file_into_run(
        redis, path, run_id=run_id, shards=8, max_bad_share=0.01
    )
    assert (len(parsed.ids), [b.line for b in parsed.bad], sum(counts)) == (1200, [1202], 1200)
    await assert_sharded(redis, ids, shards=8, key=key)


# ---- the command line ------------------------------------------------------------------------


def journeys(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_upload_and_show(
    cli_env: dict[str, str], tmp_path: Path, redis: aioredis.Redis, scratch: list[str]
) -> None:
    name = unique("cli")
    key = audience_keys(name, scratch)
    ids = ids_for(1500, unique("u"))
    path = tmp_path / "users.txt"
    path.write_text("user_id\n" + "\n".join(ids + ids[:10] + ["bad id"]) + "\n")

    shown = await asyncio.to_thread(
        journeys, cli_env, "audience", "upload", str(path), "--name", name
    )
    assert shown.returncode == 0, shown.stderr
    expected = [sum(1 for i in ids if shard_of(i, 16) == k) for k in range(16)]
    assert "total ids        1,500 in 16 shards" in shown.stdout
    assert "10 dropped" in shown.stdout
    assert "1 skipped (line 1512: whitespace inside user id)" in shown.stdout
    assert "users per shard" in shown.stdout
    for low in (0, 8):  # one table row per eight shards
        row = next(line for line in shown.stdout.splitlines() if f" {low}-{low + 7} " in line)
        assert [c.strip() for c in row.split("│")[2:-1]] == [
            f"{n:,}" for n in expected[low : low + 8]
        ]

    as_json = await asyncio.to_thread(
        journeys, cli_env, "audience", "upload", str(path), "--name", name, "--json"
    )
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert (body["total"], body["per_shard"], body["duplicates"]) == (1500, expected, 10)
    assert body["bad"] == [{"line": 1512, "text": "bad id", "reason": "whitespace inside user id"}]
    await assert_sharded(redis, ids, shards=16, key=key)

    show = json.loads(
        (await asyncio.to_thread(journeys, cli_env, "audience", "show", name, "--json")).stdout
    )
    assert (show["total"], show["per_shard"], show["damaged_shards"]) == (1500, expected, [])
    await redis.delete(key(2))
    show = json.loads(
        (await asyncio.to_thread(journeys, cli_env, "audience", "show", name, "--json")).stdout
    )
    assert show["damaged_shards"] == [2]


def test_cli_bad_file_and_options(cli_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("user_id,name\nu1,a\nu 2,b\nu3,c\n,d\n")
    failed = journeys(cli_env, "audience", "upload", str(path), "--name", unique("bad"))
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: ")
    assert "line 3: whitespace inside user id" in failed.stderr
    assert "line 5: empty user id" in failed.stderr
    assert "2 of 4 lines are bad (50.0% > allowed 1.0%)" in failed.stderr

    wrong = journeys(cli_env, "audience", "upload", str(path), "--name", "x", "--shards", "10")
    assert (wrong.returncode, "not a power of two" in wrong.stderr) == (1, True)
    missing = journeys(cli_env, "audience", "show", unique("none"))
    assert (missing.returncode, "does not exist" in missing.stderr) == (1, True)
