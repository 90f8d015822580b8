"""``journeys demo``: seed users, publish the example plans, show what was stored."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from rich.table import Table

from activities.db import plan_store, queries
from journeys.settings import Settings

from .connect import database
from .console import out
from .plan_files import read_plan

DEMO_USERS = 2_000
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


async def seed_users(pool: Any, *, count: int) -> int:
    """Upsert ``count`` demo users in one statement; returns how many users exist."""
    rows = demo_users(count)
    columns = [list(col) for col in zip(*rows, strict=True)]
    columns[4] = [json.loads(a) for a in columns[4]]
    await pool.execute(queries.USERS_UPSERT, *columns)
    total: int = await pool.fetchval(queries.USERS_COUNT)
    return total


async def run_demo(settings: Settings) -> None:
    """The demo scenario, against services the caller has started."""
    async with database(settings) as pool:
        total = await seed_users(pool, count=DEMO_USERS)
        out.print(f"demo users: {total} profiles in PostgreSQL")
        table = Table("plan", "version", "entry", "steps", "file", title="published plans")
        for path in sorted(examples_dir().glob("*.yaml")):
            if path.name == "channels.yaml":
                continue
            plan = read_plan(path, channels=examples_dir() / "channels.yaml")
            info = await plan_store.publish(pool, plan, source=str(path.name))
            table.add_row(
                plan.id, f"v{info.version}", plan.entry.type, str(len(plan.steps)), path.name
            )
        out.print(table)
    out.print(
        "Runs of these plans start with `journeys launch` once the blast engine is installed; "
        f"inspect workflows at {settings.temporal_ui_url}"
    )
