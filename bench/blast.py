"""Scenario ``blast``: a one-step ``send`` plan to the ``inbox`` channel, launch to result.

For each size N (and, at sizes up to :data:`COMPARE_UP_TO`, also with pages of
:data:`COMPARE_PAGE_SIZE`), in the same run and against the same services:

- **blast**: write N ids to a file, launch the plan through ``starter.launching.launch`` (as
  ``journeys launch --audience FILE`` does: publish, load the ids into the run's Redis shard
  sets, start PlanRunWorkflow) with a worker running in this process, and wait for the result.
  The inbox provider writes one ``inbox`` row per user; ``deliver_page`` claims and settles one
  ``deliveries`` row per user. Then every history of the run is fetched: the PlanRunWorkflow
  and each shard ``{run_id}/shard/{k}``, following continue-as-new chains back to their first
  run. One sample: a blast takes minutes.
- **floor**: what Redis and PostgreSQL cost whatever the engine does: ZRANGE the same ids back
  from 16 shard sets in chunks of :data:`READ_CHUNK`, then one ``copy_records_to_table`` of N
  rows into ``bench_deliveries_floor`` (the columns and primary key of ``deliveries``, created
  per sample and dropped after). Best of :data:`REPEAT`.
- **rows floor**: the same read plus a COPY of the two rows the product keeps per message
  (``deliveries`` and ``inbox``, into copies of those tables with all their indexes; see
  :mod:`bench.rows_floor`). Best of :data:`REPEAT`.

Worker peak RSS is ``ru_maxrss`` of this process (worker and bench share it), reset before each
blast through ``/proc/self/clear_refs`` where the kernel allows. The Redis peak is the server's
``used_memory_peak`` since it started (``CONFIG RESETSTAT`` does not reset it).
"""

from __future__ import annotations

import contextlib
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
import yaml
from rich.console import Console
from rich.table import Table
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.audience.shard_sets import write_shards
from activities.db.pool import DbPool
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import RunOptions
from journeys.names import audience_shard_key, shard_workflow_id
from journeys.settings import Settings
from starter.connect import database, redis_client
from tests.engine import client_for, for_test, start_blast, worker_running, write_ids, write_plan

from .results import save
from .rows_floor import copy_rows
from .workers import worker_processes

SHARDS = 16
PAGE_SIZE = 1000
CONCURRENCY = 4
COMPARE_PAGE_SIZE = 100
COMPARE_UP_TO = 10_000  # sizes at which pages of COMPARE_PAGE_SIZE are measured too
CHANNEL = "inbox"
READ_CHUNK = 10_000
REPEAT = 3  # floor samples (best kept)
FLOOR_TABLE = "bench_deliveries_floor"
FLOOR_COLUMNS = (
    "idempotency_key", "run_id", "node_id", "user_id", "entry", "channel", "status",
    "attempts", "reason", "provider_id", "created_at", "sent_at", "updated_at",
)  # fmt: skip
SERVICES = ("temporal", "postgres", "redis")  # pid files of the embedded stack


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """Measure every size, print the tables, write ``bench/results/blast-<date>.json``."""
    rows: list[dict[str, Any]] = []
    async with redis_client(settings) as redis, database(settings) as pool:
        for size in sizes:
            for page_size in page_sizes(size):
                Console().print(f"blast: {size:,} ids, pages of {page_size:,} ...")
                rows.append(await measure(settings, pool, redis, size, page_size))
    console = Console(width=160)
    console.print(throughput_table(rows))
    console.print(history_table(rows))
    return save(
        "blast",
        rows=rows,
        shards=SHARDS,
        concurrency=CONCURRENCY,
        channel=CHANNEL,
        read_chunk=READ_CHUNK,
        floor_repeat=REPEAT,
    )


def page_sizes(size: int) -> list[int]:
    """The plan's page size, and the comparison page size at the small sizes."""
    return [PAGE_SIZE, COMPARE_PAGE_SIZE] if size <= COMPARE_UP_TO else [PAGE_SIZE]


async def measure(
    settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    size: int,
    page_size: int,
    *,
    extra_workers: int = 0,
    channel: str = CHANNEL,
    channels: Callable[[Path], Path] | None = None,
    limits: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One blast of ``size`` ids in pages of ``page_size``, its histories, then the floor
    (``extra_workers`` more worker processes poll beside the bench's own; ``channels``
    writes another channels file holding ``channel``; ``limits`` go into the plan and
    ``policy`` into a ``JOURNEYS_POLICY`` file)."""
    with tempfile.TemporaryDirectory(prefix="bench-blast-") as tmp:
        directory = Path(tmp)
        own = for_test(settings, (channels or write_channels)(directory))
        if policy is not None:
            policy_file = directory / "policy.yaml"
            policy_file.write_text(yaml.safe_dump(policy))
            own = own.model_copy(update={"policy_file": policy_file})
        plan = write_plan(
            directory,
            channel=channel,
            shards=SHARDS,
            page_size=page_size,
            concurrency=CONCURRENCY,
            **(limits or {}),
        )
        ids = write_ids(directory, size, prefix="blast")
        load_before = round(os.getloadavg()[0], 2)  # other jobs on a shared machine
        async with worker_running(own), worker_processes(own, extra_workers):
            rss_reset = _reset_peak_rss()
            cpu_before = _cpu_seconds(settings)
            started = time.perf_counter()
            launched, handle = await start_blast(
                own, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=RunOptions()
            )
            launch_s = time.perf_counter() - started
            result = await handle.result()
            blast_s = time.perf_counter() - started
            cpu = _cpu_delta(cpu_before, _cpu_seconds(settings))
            peak_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            memory = await redis.info("memory")
            histories = await run_histories(await client_for(own), launched.run_id)
    if result.status is not RunStatus.COMPLETED or result.totals.delivered != size:
        raise RuntimeError(f"blast of {size} ended {result.status}: {result.totals}")
    sent = await pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE run_id = $1 AND status = 'sent'", launched.run_id
    )
    if sent != size:
        raise RuntimeError(f"blast of {size}: {sent} deliveries rows are 'sent'")
    floor = await measure_floor(pool, redis, size, run_id=launched.run_id)
    await forget_run(pool, launched.run_id)
    largest = max((run for wf in histories for run in wf.runs), key=lambda r: r.events)
    busiest = max((wf for wf in histories if wf.shard is not None), key=lambda wf: wf.events)
    parent = next(wf for wf in histories if wf.shard is None)
    return {
        "size": size,
        "page_size": page_size,
        "run_id": launched.run_id,
        "launch_s": round(launch_s, 3),
        "blast_s": round(blast_s, 3),
        "workflow_s": round(result.duration.total_seconds(), 3),
        "users_per_s": round(size / blast_s, 1),
        **{f"floor_{k}": v for k, v in floor.items()},
        "ratio": round(blast_s / floor["total_s"], 1),
        "rows_ratio": round(blast_s / floor["rows_total_s"], 1),
        "largest_history": {
            "workflow_id": largest.workflow_id,
            "run_id": largest.run_id,
            "events": largest.events,
            "bytes": largest.bytes,
        },
        "busiest_shard": {
            "workflow_id": busiest.workflow_id,
            "runs": len(busiest.runs),
            "continue_as_new": len(busiest.runs) - 1,
            "events": busiest.events,
        },
        "parent": {
            "events": parent.events,
            "bytes": parent.bytes,
            "signals_received": parent.signals,
        },
        "max_continue_as_new": max(len(wf.runs) - 1 for wf in histories),
        "activities": sum(wf.activities for wf in histories),
        "history_events_total": sum(wf.events for wf in histories),
        "peak_rss_mib": round(peak_rss_kib / 1024, 1),
        "peak_rss_reset": rss_reset,
        "redis_used_memory_peak": memory.get("used_memory_peak_human"),
        "redis_used_memory_after": memory.get("used_memory_human"),
        "cpu_s": cpu,
        "loadavg_1m_before": load_before,
        "workflows": [wf.as_json() for wf in histories],
    }


# --- histories ---------------------------------------------------------------------------


@dataclass
class RunHistory:
    """One run of one workflow id."""

    workflow_id: str
    run_id: str
    events: int
    bytes: int
    activities: int
    signals: int


@dataclass
class WorkflowHistories:
    """Every run of one workflow id, first run first."""

    workflow_id: str
    shard: int | None
    runs: list[RunHistory] = field(default_factory=list)

    @property
    def events(self) -> int:
        return max((r.events for r in self.runs), default=0)

    @property
    def bytes(self) -> int:
        return max((r.bytes for r in self.runs), default=0)

    @property
    def activities(self) -> int:
        return sum(r.activities for r in self.runs)

    @property
    def signals(self) -> int:
        return sum(r.signals for r in self.runs)

    def as_json(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "runs": [{"run_id": r.run_id, "events": r.events, "bytes": r.bytes} for r in self.runs],
            "activities": self.activities,
            "signals_received": self.signals,
        }


async def run_histories(client: Client, run_id: str) -> list[WorkflowHistories]:
    """The PlanRunWorkflow and every shard that was started, each with its whole CAN chain."""
    out = [await chain(client, run_id, shard=None)]
    for k in range(SHARDS):
        shard = await chain(client, shard_workflow_id(run_id, k), shard=k)
        if shard.runs:  # empty shards are never started
            out.append(shard)
    return out


async def chain(client: Client, workflow_id: str, *, shard: int | None) -> WorkflowHistories:
    """Walk back from the latest run through ``continued_execution_run_id``."""
    found = WorkflowHistories(workflow_id=workflow_id, shard=shard)
    run: str | None = None
    while True:
        try:
            history = await client.get_workflow_handle(workflow_id, run_id=run).fetch_history()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                break
            raise
        events = list(history.events)
        started = events[0].workflow_execution_started_event_attributes
        found.runs.insert(
            0,
            RunHistory(
                workflow_id=workflow_id,
                run_id=history.run_id if run is None else run,
                events=len(events),
                bytes=History(events=events).ByteSize(),
                activities=_count(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
                signals=_count(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED),
            ),
        )
        run = started.continued_execution_run_id or None
        if run is None:
            break
    return found


def _count(events: list[Any], kind: int) -> int:
    return sum(1 for e in events if e.event_type == kind)


# --- floor -------------------------------------------------------------------------------


async def measure_floor(
    pool: DbPool, redis: aioredis.Redis, size: int, *, run_id: str
) -> dict[str, float]:
    """Best of ``REPEAT``: ZRANGE the ids back from shard sets, COPY N delivery rows."""
    ids = [f"blast-{n:06d}" for n in range(1, size + 1)]
    key = partial(audience_shard_key, f"bench-blast-floor-{uuid.uuid4().hex[:8]}")
    await write_shards(redis, ids, shards=SHARDS, key=key)
    samples: dict[str, list[float]] = {"read_s": [], "copy_s": [], "total_s": []}
    try:
        for _ in range(REPEAT):
            async with pool.acquire() as conn:
                await _create_floor_table(conn)
                try:
                    started = time.perf_counter()
                    users = await raw_read(redis, key)
                    read = time.perf_counter() - started
                    await raw_copy(conn, users, run_id=f"{run_id}-floor")
                    total = time.perf_counter() - started
                finally:
                    await conn.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
            if len(users) != size:
                raise RuntimeError(f"floor read {len(users)} of {size} ids")
            samples["read_s"].append(read)
            samples["copy_s"].append(total - read)
            samples["total_s"].append(total)
    finally:
        await redis.delete(*(key(k) for k in range(SHARDS)))
    best = min(range(REPEAT), key=lambda i: samples["total_s"][i])
    floor = {name: round(values[best], 4) for name, values in samples.items()}
    rows = await copy_rows(pool, ids, run_id=f"{run_id}-rows", repeat=REPEAT)
    floor["rows_copy_s"] = round(rows, 4)
    floor["rows_total_s"] = round(floor["read_s"] + rows, 4)
    return floor


async def raw_read(redis: aioredis.Redis, key: Any) -> list[str]:
    """Every member of the 16 shard sets, ``READ_CHUNK`` at a time."""
    users: list[str] = []
    for shard in range(SHARDS):
        low = 0
        while True:
            chunk = cast(list[bytes], await redis.zrange(key(shard), low, low + READ_CHUNK - 1))
            users += [m.decode() for m in chunk]
            if len(chunk) < READ_CHUNK:
                break
            low += READ_CHUNK
    return users


async def raw_copy(conn: Any, users: list[str], *, run_id: str) -> None:
    """One COPY of a settled delivery row per user."""
    now = datetime.now(UTC)
    records = [
        (k, run_id, "hello", u, 0, CHANNEL, "sent", 1, None, k, now, now, now)
        for u in users
        for k in (f"{run_id}:hello:{u}:0",)
    ]
    await conn.copy_records_to_table(FLOOR_TABLE, records=records, columns=FLOOR_COLUMNS)


async def _create_floor_table(conn: Any) -> None:
    await conn.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
    await conn.execute(
        f"CREATE TABLE {FLOOR_TABLE} (LIKE deliveries INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    await conn.execute(f"ALTER TABLE {FLOOR_TABLE} ADD PRIMARY KEY (idempotency_key)")


async def forget_run(pool: DbPool, run_id: str) -> None:
    """Delete the run's rows so the bench leaves configured services as it found them."""
    await pool.execute("DELETE FROM deliveries WHERE run_id = $1", run_id)
    await pool.execute("DELETE FROM inbox WHERE starts_with(message_id, $1)", f"{run_id}:")


# --- the channels file -------------------------------------------------------------------


def write_channels(directory: Path) -> Path:
    """One in-app channel ``inbox`` whose provider writes rows to the inbox table."""
    channels = {
        "channels": {
            CHANNEL: {
                "type": "in_app",
                "provider": {"kind": "inbox", "slot": "popup"},
                "templates": {"hello": {"title": "Hello", "body": "Hi {{ user.first_name }}"}},
            }
        }
    }
    path = directory / "channels.yaml"
    path.write_text(yaml.safe_dump(channels))
    return path


# --- process resources -------------------------------------------------------------------


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _cpu_seconds(settings: Settings) -> dict[str, float]:
    """CPU seconds used so far by this process and by each embedded service's process tree."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {"bench+worker": usage.ru_utime + usage.ru_stime}
    stats = _proc_stats()
    for name in SERVICES:
        pid = service_pid(settings.home / "run" / f"{name}.pid")
        if pid is not None and pid in stats:
            out[name] = tree_total(pid, stats)
    return out


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before[name], 2) for name in after if name in before}


def service_pid(path: Path) -> int | None:
    """The pid in a service's pid file, or None if it is missing or unreadable."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _proc_stats() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of the process and of the children it reaped)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
            stats[int(entry.name)] = (int(fields[1]), ticks / tick)
    return stats


def tree_total(root: int, stats: dict[int, tuple[int, float]]) -> float:
    """Sum of ``stats`` (pid -> (parent pid, figure)) over ``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo += children.get(pid, [])
    return total


# --- output ------------------------------------------------------------------------------


def throughput_table(rows: list[dict[str, Any]]) -> Table:
    """Launch to result against the floor."""
    out = Table(
        "ids", "page", "launch s", "blast s", "users/s", "floor read s", "floor copy s",
        "floor s", "blast / floor", "rows floor s", "blast / rows floor", "peak RSS MiB",
        "Redis peak",
        title=f"blast to the inbox ({SHARDS} shards, concurrency {CONCURRENCY}, one sample; "
        f"floor best of {REPEAT})",
    )  # fmt: skip
    for row in rows:
        out.add_row(
            f"{row['size']:,}",
            f"{row['page_size']:,}",
            f"{row['launch_s']:.2f}",
            f"{row['blast_s']:.1f}",
            f"{row['users_per_s']:,.0f}",
            f"{row['floor_read_s']:.3f}",
            f"{row['floor_copy_s']:.3f}",
            f"{row['floor_total_s']:.3f}",
            f"{row['ratio']:.1f}",
            f"{row['floor_rows_total_s']:.3f}",
            f"{row['rows_ratio']:.1f}",
            f"{row['peak_rss_mib']:,.0f}",
            str(row["redis_used_memory_peak"]),
        )
    return out


def history_table(rows: list[dict[str, Any]]) -> Table:
    """The histories of each run, and where the CPU went."""
    out = Table(
        "ids", "page", "largest history", "events", "KiB", "busiest shard events",
        "its CAN", "parent events", "parent signals", "activities", "CPU s",
        title="histories (largest single run; CAN = continue-as-new generations)",
    )  # fmt: skip
    for row in rows:
        largest, busiest, parent = row["largest_history"], row["busiest_shard"], row["parent"]
        where = largest["workflow_id"].removeprefix(row["run_id"]) or "PlanRun"
        out.add_row(
            f"{row['size']:,}",
            f"{row['page_size']:,}",
            where,
            f"{largest['events']:,}",
            f"{largest['bytes'] / 1024:,.0f}",
            f"{busiest['events']:,}",
            str(busiest["continue_as_new"]),
            f"{parent['events']:,}",
            f"{parent['signals_received']:,}",
            f"{row['activities']:,}",
            ", ".join(f"{k} {v:.1f}" for k, v in row["cpu_s"].items()),
        )
    return out
