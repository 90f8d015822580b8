"""Scenario ``events_soak``: events at a high steady rate for minutes, memory and p99 over time.

Issue 20 asks for 1,000 events/s for 10 minutes with flat memory and a steady p99. One run of
the bench's event plan (``BENCH_SHARDS``, default 4, flush 200 ms) is fed open loop at
``BENCH_SOAK_RATE`` events/s (1,000) for ``BENCH_SOAK_MINUTES`` (10). Every
:data:`SAMPLE` the resident memory of each process is read from ``/proc``: this one (the
bench and the worker), the ingest API, and the embedded Temporal server, PostgreSQL and Redis
(process trees), with Redis's own ``used_memory``. Afterwards each event's latency (due to
inbox row) is grouped by the minute it was due in: p50 / p99 / max per minute, and memory
per minute (the mean of its samples), first minute against last.
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

SHARDS = int(os.environ.get("BENCH_SHARDS", "4").split(",")[0])
RATE = int(os.environ.get("BENCH_SOAK_RATE", "1000"))
MINUTES = int(os.environ.get("BENCH_SOAK_MINUTES", "10"))
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
        f"events_soak: {result['events']:,} events at {RATE}/s on {SHARDS} shard(s); "
        f"memory MiB first minute -> last: "
        + ", ".join(f"{k} {a:.0f} -> {b:.0f}" for k, (a, b) in result["memory_drift"].items())
        + f"; failed tasks {result['failed_tasks'] or 'none'}"
    )
    return save("events_soak", rows=result.pop("minutes"), **result)


async def soak(settings: Settings, plan_file: Path, *, url: str) -> dict[str, Any]:
    async with redis_client(settings) as redis, database(settings) as pool:
        client, plan, run_id, handle = await launch_listening(
            settings, plan_file, pool=pool, redis=redis
        )
        samples: list[dict[str, float]] = []
        started = datetime.now(UTC)
        sampling = asyncio.create_task(sample_memory(settings, redis, samples, started))
        async with Journeys(url) as journeys:

            async def send(batch: list[tuple[str, datetime]]) -> None:
                await post_events(journeys, plan.id, batch)

            due = await steady(send, run_id, duration=timedelta(minutes=MINUTES), rate=RATE)
        created = await _all_created(pool, run_id, len(due))
        sampling.cancel()
        await handle.signal(PlanRunWorkflow.cancel, ControlSignal())
        await handle.result()
        timings = [
            await task_timings(client, shard_workflow_id(run_id, k), started=started)
            for k in range(SHARDS)
        ]
        await forget_run(pool, run_id)
    minutes = per_minute(due, created, samples, started=started)
    failed: dict[str, int] = {}
    for t in timings:
        for cause, n in t.failed.items():
            failed[cause] = failed.get(cause, 0) + n
    return {
        "shards": SHARDS,
        "rate": RATE,
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
    }


async def sample_memory(
    settings: Settings, redis: Any, into: list[dict[str, float]], started: datetime
) -> None:
    """Every SAMPLE: resident MiB per process group, and Redis's used_memory."""
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
            "SELECT user_id, created_at FROM inbox WHERE starts_with(message_id, $1)",
            f"{run_id}:",
        )
        if len(rows) >= expected or time.perf_counter() > deadline:
            break
        await asyncio.sleep(1)
    if len(rows) < expected:
        raise RuntimeError(f"events_soak: {expected - len(rows)} of {expected} sends missing")
    return {r["user_id"]: r["created_at"] for r in rows}


def per_minute(
    due: dict[str, datetime],
    created: dict[str, datetime],
    samples: list[dict[str, float]],
    *,
    started: datetime,
) -> list[dict[str, Any]]:
    """Latency percentiles of the events due in each minute, and that minute's mean memory."""
    latencies: dict[int, list[float]] = {}
    for user, at in due.items():
        minute = int((at - started).total_seconds() // 60)
        latencies.setdefault(minute, []).append((created[user] - at).total_seconds())
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
                "memory_mib": memory,
            }
        )
    return out


def minutes_table(minutes: list[dict[str, Any]]) -> Table:
    table = Table(title=f"events_soak: {RATE}/s on {SHARDS} shard(s), per minute")
    for column in ("minute", "events", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    names = list(minutes[0]["memory_mib"])
    for name in names:
        table.add_column(f"{name} MiB", justify="right")
    for m in minutes:
        table.add_row(
            str(m["minute"]),
            f"{m['events']:,}",
            *(f"{m[k]:,}" for k in ("p50_ms", "p99_ms", "max_ms")),
            *(f"{m['memory_mib'][n]:.0f}" for n in names),
        )
    return table
