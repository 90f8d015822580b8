"""``journeys demo``: seed users, publish the examples, run one through the real workflows."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.live import Live
from rich.table import Table
from temporalio.client import WorkflowExecutionStatus

from activities.audience.shard_sets import save_audience
from activities.channels.message import idempotency_key
from activities.db import decision_store, plan_store, queries, tag_store
from activities.db.pool import DbPool
from activities.engagement import EngagementStore
from activities.tags.values import computed_values
from journeys.channels_config import load_channels
from journeys.contracts.runs import PlanRunResult
from journeys.decisions.model import Instance, Scene, load_decision_file
from journeys.settings import Settings
from journeys.tags.model import load_tags_file

from .connect import database, redis_client, temporal_client
from .console import out
from .launching import launch
from .plan_files import NOT_PLANS, read_plan
from .progress_view import progress_table, result_table
from .report import run_report
from .report_view import report_view
from .run_state import live_progress

DEMO_USERS = 2_000
DEMO_ACTOR = "journeys demo"
WELCOME_STEP = "welcome"
"""The send step of examples/welcome-blast.yaml, whose popups the simulated app reads."""
_ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "UTC"]
_SEGMENTS = ["new", "active", "lapsed", "vip"]


def examples_dir() -> Path:
    """``examples/`` of the source tree, else of the working directory."""
    beside_code = Path(__file__).resolve().parents[1] / "examples"
    return beside_code if beside_code.is_dir() else Path.cwd() / "examples"


def demo_users(count: int, *, seed: int = 7) -> list[tuple[str, str, str, str, str]]:
    """Deterministic demo profiles: (user_id, email, phone, timezone, attrs JSON)."""
    rng = random.Random(seed)
    rows = []
    for n in range(1, count + 1):
        user_id = f"u{n:06d}"
        attrs = {
            "first_name": f"User{n}",
            "segment": rng.choice(_SEGMENTS),
            "orders": rng.randint(0, 40),
            "risk": rng.choice(["low", "medium", "high"]),
        }
        rows.append(
            (
                user_id,
                f"{user_id}@example.test",
                f"+1555{n:07d}",
                rng.choice(_ZONES),
                json.dumps(attrs),
            )
        )
    return rows


async def seed_users(pool: DbPool, *, count: int) -> int:
    """Upsert ``count`` demo users in one statement; returns how many users exist."""
    rows = demo_users(count)
    columns = [list(col) for col in zip(*rows, strict=True)]
    columns[4] = [json.loads(a) for a in columns[4]]
    await pool.execute(queries.USERS_UPSERT, *columns)
    total: int = await pool.fetchval(queries.USERS_COUNT)
    return total


def demo_settings(settings: Settings) -> Settings:
    """The example channels, unless JOURNEYS_CHANNELS names a file that exists."""
    if settings.channels_file.exists():
        return settings
    return settings.model_copy(update={"channels_file": examples_dir() / "channels.yaml"})


async def publish_example_tags(pool: DbPool, *, user: str) -> list[str]:
    """Define examples/tags.yaml, try each pending draft on ``user`` (the test a tag needs
    before it is published) and publish it; return the tags published."""
    tags = load_tags_file(examples_dir() / "tags.yaml")
    await tag_store.define(pool, tags)
    published = []
    now = datetime.now(UTC)
    for rec in await tag_store.records(pool, sorted(tags.tags)):
        draft = rec.tag.draft
        if draft is None:
            continue
        if not draft.passed_through:  # a pass-through value is whatever the caller gives
            await computed_values(pool, rec.tag.name, draft, [user], now=now)
        await tag_store.mark_tested(pool, rec.tag.name, draft=draft)
        await tag_store.publish(pool, rec.tag.name)
        published.append(rec.tag.name)
    return published


async def publish_example_decisions(pool: DbPool) -> list[str]:
    """The example scenes, then their instances, published (a plan's ``decide`` step reads
    one); the instances' ids."""
    files = sorted((examples_dir() / "decisions").glob("*.yaml"))
    models = [load_decision_file(path) for path in files]
    for scene in (m for m in models if isinstance(m, Scene)):
        await decision_store.define_scene(pool, scene)
    instances = [m for m in models if isinstance(m, Instance)]
    for instance in instances:
        await decision_store.save_draft(pool, instance)
        await decision_store.publish(pool, instance.instance)
    return [i.instance for i in instances]


async def run_demo(settings: Settings) -> PlanRunResult:
    """The demo scenario, against services (and a worker) the caller has started."""
    channels = examples_dir() / "channels.yaml"
    client = await temporal_client(settings)
    async with database(settings) as pool, redis_client(settings) as redis:
        total = await seed_users(pool, count=DEMO_USERS)
        out.print(f"demo users: {total} profiles in PostgreSQL")
        ids = [row[0] for row in demo_users(DEMO_USERS)]
        audience = await save_audience(
            redis, pool, name="new-signups", ids=ids, shards=16, source="journeys demo"
        )
        out.print(f"audience new-signups: {audience.total} users in {audience.shards} shard sets")
        table = Table("plan", "version", "entry", "steps", "file", title="published plans")
        published = await publish_example_tags(pool, user=ids[0])
        out.print(f"tags: {len(published)} published from examples/tags.yaml")
        decided = await publish_example_decisions(pool)
        out.print(f"decision instances: {', '.join(decided)} live from examples/decisions")
        for path in sorted(examples_dir().glob("*.yaml")):
            if path.name in NOT_PLANS:
                continue
            plan = read_plan(path, channels=channels)
            info = await plan_store.publish(pool, plan, source=str(path.name), by=DEMO_ACTOR)
            table.add_row(
                plan.id, f"v{info.version}", plan.entry.type, str(len(plan.steps)), path.name
            )
        out.print(table)
        blast = examples_dir() / "welcome-blast.yaml"
        launched, handle = await launch(
            settings,
            client=client,
            pool=pool,
            redis=redis,
            plan=read_plan(blast, channels=channels),
            plan_file=blast,
            by=DEMO_ACTOR,
        )
    out.print(f"launched [bold]{launched.run_id}[/]")
    with Live(console=out, auto_refresh=False) as live:
        while not await _done(handle):
            live.update(progress_table(await live_progress(client, handle)), refresh=True)
            await asyncio.sleep(0.5)
    result: PlanRunResult = await handle.result()
    out.print()
    out.print(result_table(result))
    async with database(settings) as pool:
        read, clicked = await act_as_the_app(pool, launched.run_id, ids)
        out.print(
            f"the app (simulated): {read} popups read, {clicked} clicked, through the "
            "engagement store that POST /v1/inbox/read and /click call"
        )
        costs = load_channels(channels).costs()
        out.print(report_view(await run_report(pool, client, launched.run_id, costs=costs)))
    out.print(f"watch it in the Temporal UI: {launched.ui_url}", soft_wrap=True)
    return result


async def act_as_the_app(pool: DbPool, run_id: str, users: list[str]) -> tuple[int, int]:
    """Read every fourth user's popup and click every tenth's, as the app would report them,
    so the demo's report has opens and clicks to show."""
    store = EngagementStore(pool=pool)
    read = clicked = 0
    for n, user in enumerate(users):
        if n % 4 and n % 10:
            continue
        key = idempotency_key(run_id, WELCOME_STEP, user)
        done = await store.inbox(message_id=key, user_id=user, clicked=n % 10 == 0)
        read += done is not None
        clicked += done is not None and n % 10 == 0
    return read, clicked


async def _done(handle: Any) -> bool:
    return bool((await handle.describe()).status != WorkflowExecutionStatus.RUNNING)
