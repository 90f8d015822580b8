"""Scenario ``events_soak``: events at a high steady rate for minutes, memory and p99 over time.

Issue 20 asks for 1,000 events/s for 10 minutes with flat memory and a steady p99. One run of
the bench's event plan (``BENCH_SHARDS``, default 4, flush 200 ms) is fed open loop at
``BENCH_SOAK_RATE`` events/s (1,000) for ``BENCH_SOAK_MINUTES`` (10). Every
:data:`SAMPLE` the resident memory of each process is read from ``/proc``: this one (the
bench and the worker), the ingest API, and the embedded Temporal server, PostgreSQL and Redis
(process trees), with Redis's own ``used_memory``. Afterwards each event's latency (due to
inbox row) is grouped by the minute it was due in: p50 / p99 / max per minute, and memory
per minute (the mean of its samples), first minute against last.

Each event is a new user unless ``BENCH_SOAK_USERS`` is set: then events cycle through that
many users, who re-enter the journey (its default re-entry rule, when not in it now), so
Redis should stay flat. Beside memory, the soak records each POST's time (is a tail in the
ingest API or after it?), PostgreSQL's activity every sample, and, at the end, Redis's memory
by key shape (``bench/soak_probes.py``).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from journeys.contracts.runs import ControlSignal
from journeys.names import shard_workflow_id
from journeys.settings import Settings
from starter.client import Journeys
from starter.connect import database, redis_client
from tests.engine import for_test, worker_running
from workflows.plan_run import PlanRunWorkflow

from .blast import SERVICES, forget_run, service_pid, tree_total, write_channels
from .events import ingest_api, launch_listening, percentile, post_events, steady, write_event_plan
from .events_tail import FLUSH, task_timings
from .results import save
from .soak_probes import redis_by_shape, sample_postgres

SHARDS = int(os.environ.get("BENCH_SHARDS", "4").split(",")[0])
RATE = int(os.environ.get("BENCH_SOAK_RATE", "1000"))
MINUTES = int(os.environ.get("BENCH_SOAK_MINUTES", "10"))
USERS = int(os.environ.get("BENCH_SOAK_USERS", "0")) or None
SAMPLE = timedelta(seconds=10)
DRAIN = timedelta(minutes=5)
console = Console(highlight=False, width=200)  # the per-minute table is wide


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """One soak; print the per-minute table, write the JSON result."""
    del sizes
    with tempfile.TemporaryDirectory(prefix="bench-events-soak-") as tmp:
        own = for_test(settings, write_channels(Path(tmp)))
        plan_file = write_event_plan(Path(tmp), shards=SHARDS, flush_every=FLUSH)
        async with ingest_api(own) as url, worker_running(own):
            result = await soak(own, plan_file, url=url)
    console.print(minutes_table(result["minutes"]))
    console.print(
        f"events_soak: {result['events']:,} events at {RATE}/s on {SHARDS} shard(s), "
        f"{f'{USERS:,} recurring users' if USERS else 'a new user each'}; "
        f"memory MiB first minute -> last: "
        + ", ".join(f"{k} {a:.0f} -> {b:.0f}" for k, (a, b) in result["memory_drift"].items())
        + f"; failed tasks {result['failed_tasks'] or 'none'}"
    )
    for row in result["redis_by_shape"]:
        console.print(f"  redis {row['shape']}: {row['keys']:,} keys, {row['mib']} MiB")
    return save("events_soak", rows=result.pop("minutes"), **result)


async def soak(settings: Settings, plan_file: Path, *, url: str) -> dict[str, Any]:
    async with redis_client(settings) as redis, database(settings) as pool:
        client, plan, run_id, handle = await launch_listening(
            settings, plan_file, pool=pool, redis=redis
        )
        samples: list[dict[str, float]] = []
        postgres: list[dict[str, Any]] = []
        posts: list[tuple[datetime, float]] = []
        started = datetime.now(UTC)
        sampling = asyncio.create_task(
            sample_stack(settings, redis, samples, started, pool=pool, postgres=postgres)
        )
        async with Journeys(url) as journeys:

            async def send(batch: list[tuple[str, datetime]]) -> None:
                began = time.perf_counter()
                await post_events(journeys, plan.id, batch)
                posts.append((batch[0][1], time.perf_counter() - began))

            due = await steady(
                send, run_id, duration=timedelta(minutes=MINUTES), rate=RATE, users=USERS
            )
        created = await _all_created(pool, run_id, len(due))
        sampling.cancel()
        by_shape = await redis_by_shape(redis, run_id=run_id)
        await handle.signal(PlanRunWorkflow.cancel, ControlSignal())
        await handle.result()
        timings = [
            await task_timings(client, shard_workflow_id(run_id, k), started=started)
            for k in range(SHARDS)
        ]
        await forget_run(pool, run_id)
    minutes = per_minute(due, created, samples, started=started, posts=posts)
    failed: dict[str, int] = {}
    for t in timings:
        for cause, n in t.failed.items():
            failed[cause] = failed.get(cause, 0) + n
    return {
        "shards": SHARDS,
        "rate": RATE,
        "users": USERS,
        "events": len(due),
        "minutes": minutes,
        "memory_drift": {
            k: (minutes[0]["memory_mib"][k], minutes[-1]["memory_mib"][k])
            for k in minutes[0]["memory_mib"]
        },
        "runs_per_shard": [t.runs for t in timings],
        "slowest_task_s": max(t.slowest_s for t in timings),
        "failed_tasks": failed,
        "samples": samples,
        "postgres": postgres,
        "redis_by_shape": by_shape,
    }


async def sample_stack(
    settings: Settings,
    redis: Any,
    into: list[dict[str, float]],
    started: datetime,
    *,
    pool: Any,
    postgres: list[dict[str, Any]],
) -> None:
    """Every SAMPLE: resident MiB per process group, Redis's used_memory, and a look at
    PostgreSQL's activity (into ``postgres``)."""
    while True:
        stats = _rss_by_pid()
        me = os.getpid()
        row = {"at_s": (datetime.now(UTC) - started).total_seconds()}
        row["bench+worker"] = stats.get(me, (0, 0.0))[1]
        services = {name: service_pid(settings.home / "run" / f"{name}.pid") for name in SERVICES}
        for name, pid in services.items():
            row[name] = tree_total(pid, stats) if pid is not None else 0.0
        # the embedded stack's servers are this process's children too: only the rest is
        # the ingest API
        row["ingest API"] = sum(
            rss
            for pid, (parent, rss) in stats.items()
            if parent == me and pid not in services.values()
        )
        info = await redis.info("memory")
        row["redis used_memory"] = int(info["used_memory"]) / 2**20
        into.append(row)
        postgres.append(await sample_postgres(pool, at_s=row["at_s"]))
        await asyncio.sleep(SAMPLE.total_seconds())


def _rss_by_pid() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, resident MiB)."""
    page = os.sysconf("SC_PAGE_SIZE")
    out: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            resident = int((entry / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry.name)] = (parent, resident * page / 2**20)
    return out


async def _all_created(pool: Any, run_id: str, expected: int) -> dict[str, datetime]:
    deadline = time.perf_counter() + DRAIN.total_seconds()
    while True:
        rows = await pool.fetch(
            "SELECT user_id, message_id, created_at FROM inbox WHERE starts_with(message_id, $1)",
            f"{run_id}:",
        )
        if len(rows) >= expected or time.perf_counter() > deadline:
            break
        await asyncio.sleep(1)
    if len(rows) < expected:
        raise RuntimeError(f"events_soak: {expected - len(rows)} of {expected} sends missing")
    if USERS is None:
        return {r["user_id"]: r["created_at"] for r in rows}
    # the message id ends with the entry number: the user's n-th event, as steady() keys it
    return {f"{r['user_id']}:{r['message_id'].rsplit(':', 1)[1]}": r["created_at"] for r in rows}


def per_minute(
    due: dict[str, datetime],
    created: dict[str, datetime],
    samples: list[dict[str, float]],
    *,
    started: datetime,
    posts: list[tuple[datetime, float]],
) -> list[dict[str, Any]]:
    """Latency percentiles of the events due in each minute, the p99 of the POSTs due in it,
    and that minute's mean memory."""
    latencies: dict[int, list[float]] = {}
    for user, at in due.items():
        minute = int((at - started).total_seconds() // 60)
        latencies.setdefault(minute, []).append((created[user] - at).total_seconds())
    post_times: dict[int, list[float]] = {}
    for at, took_s in posts:
        post_times.setdefault(int((at - started).total_seconds() // 60), []).append(took_s)
    out: list[dict[str, Any]] = []
    for minute in sorted(latencies):
        took = sorted(latencies[minute])
        in_minute = [s for s in samples if int(s["at_s"] // 60) == minute] or samples[-1:]
        memory = {
            k: round(sum(s[k] for s in in_minute) / len(in_minute), 1)
            for k in in_minute[0]
            if k != "at_s"
        }
        out.append(
            {
                "minute": minute + 1,
                "events": len(took),
                "p50_ms": round(percentile(took, 50) * 1000),
                "p99_ms": round(percentile(took, 99) * 1000),
                "max_ms": round(took[-1] * 1000),
                "post_p99_ms": round(percentile(sorted(post_times.get(minute, [0.0])), 99) * 1000),
                "memory_mib": memory,
            }
        )
    return out


def minutes_table(minutes: list[dict[str, Any]]) -> Table:
    table = Table(title=f"events_soak: {RATE}/s on {SHARDS} shard(s), per minute")
    for column in ("minute", "events", "p50 ms", "p99 ms", "max ms", "POST p99 ms"):
        table.add_column(column, justify="right")
    names = list(minutes[0]["memory_mib"])
    for name in names:
        table.add_column(f"{name} MiB", justify="right")
    for m in minutes:
        table.add_row(
            str(m["minute"]),
            f"{m['events']:,}",
            *(f"{m[k]:,}" for k in ("p50_ms", "p99_ms", "max_ms", "post_p99_ms")),
            *(f"{m['memory_mib'][n]:.0f}" for n in names),
        )
    return table
