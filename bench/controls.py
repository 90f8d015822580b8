"""Scenario ``controls``: the inbox blast with every delivery control configured, against the
same blast with none, in one run (issue 16: at most 1.3x).

For each size N, three blasts of the same N ids (``bench.blast.measure``: 16 shards, pages of
1,000, the inbox channel) in the order none, all, none, so a drift of the machine shows:

- **none**: no policy file, no limits in the plan. The gate still runs: suppression is always
  checked and every message joins its user's sent history.
- **all**: a policy with a cap on all channels (20 a day) and on the inbox channel (15),
  quiet hours on the inbox channel (a window that does not hold now, in UTC, the zone every
  bench user falls back to), a workspace quota, and :data:`SUPPRESSED` other users on the
  suppression list; the plan adds a plan cap (1 in 7 days), its own cap and a budget. Every
  user passes them all: the blast checks ``delivered == N``.

Besides, the gate alone: :data:`GATE_PAGES` pages of 1,000 users checked against the same
controls straight through ``DeliveryGate.check``, to show what one atomic call costs.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from activities.controls.gate import DeliveryGate
from activities.controls.spending import reset
from activities.controls.suppression import SuppressionStore
from journeys.delivery_controls import controls_for
from journeys.names import quota_key
from journeys.plan.models import Plan
from journeys.policy import Policy
from journeys.settings import Settings
from starter.connect import database, redis_client

from .blast import CHANNEL, PAGE_SIZE, measure
from .results import save

SUPPRESSED = 10_000
GATE_PAGES = 200


def controls_policy(size: int) -> dict[str, Any]:
    """Every workspace control, none of which stops a bench user now."""
    now = datetime.now(UTC)
    start, end = now + timedelta(hours=6), now + timedelta(hours=8)
    return {
        # the same ids are blasted several times a run (each size, each label): caps high
        # enough that none binds, checked in full all the same
        "caps": [{"max": 20, "per": "1d"}, {"channel": CHANNEL, "max": 15, "per": "1d"}],
        "quiet_hours": [{"channel": CHANNEL, "start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}],
        "fallback_zone": "UTC",
        "quotas": [{"channel": CHANNEL, "max_messages": 10 * size}],
    }


def plan_limits(size: int) -> dict[str, Any]:
    return {
        "plan_cap": {"max": 1, "per": "7d"},
        "caps": [{"max": 18, "per": "1d"}],
        "budget": [{"channel": CHANNEL, "max_messages": size}],
    }


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """Measure each size three ways and the gate alone; table and JSON."""
    rows: list[dict[str, Any]] = []
    async with redis_client(settings) as redis, database(settings) as pool:
        store = SuppressionStore(pool=pool, redis=redis)
        await store.add([f"bench-sup-{n:06d}" for n in range(SUPPRESSED)], reason="bench")
        gate = await gate_alone(redis)
        for size in sizes:
            for label in ("none", "all", "none"):
                Console().print(f"controls: {size:,} ids, controls {label} ...")
                configured = label == "all"
                row = await measure(
                    settings,
                    pool,
                    redis,
                    size,
                    PAGE_SIZE,
                    limits=plan_limits(size) if configured else None,
                    policy=controls_policy(size) if configured else None,
                )
                rows.append({"controls": label, **_brief(row)})
    Console(width=160).print(table(rows), gate_table(gate))
    return save("controls", rows=rows, gate=gate, suppressed=SUPPRESSED)


async def gate_alone(redis: Any) -> dict[str, Any]:
    """Pages of 1,000 fresh users through the gate with every control: users per second."""
    size = GATE_PAGES * PAGE_SIZE
    policy = Policy.model_validate(controls_policy(size))
    body = {
        "id": "bench-gate",
        "name": "gate",
        "audience": {"source": "list", "name": "x"},
        "entry": {"type": "immediate"},
        "steps": {"hello": {"type": "send", "channel": CHANNEL, "template": "hello"}},
        "limits": plan_limits(size),
    }
    controls = controls_for(Plan.model_validate(body), policy, run_id="bench-gate", channel=CHANNEL)
    gate, tag = DeliveryGate(redis), uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    started = time.perf_counter()
    for page in range(GATE_PAGES):
        entries = {f"gate-{tag}-{page}-{n}": 0 for n in range(PAGE_SIZE)}
        verdict = await gate.check(
            controls,
            channel=CHANNEL,
            run_id="bench-gate",
            node="hello",
            entries=entries,
            zones={},
            now=now,
            cost=0.0,
        )
        if len(verdict.passed) != PAGE_SIZE:
            raise RuntimeError(f"the gate stopped {len(verdict.skipped)} bench users")
    elapsed = time.perf_counter() - started
    await reset(redis, quota_key(CHANNEL))  # the blasts start with the whole pack
    users = GATE_PAGES * PAGE_SIZE
    return {"users": users, "seconds": round(elapsed, 3), "users_per_s": round(users / elapsed)}


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("size", "blast_s", "users_per_s", "cpu_s", "redis_used_memory_after", "run_id")
    return {k: row[k] for k in keep if k in row}


def table(rows: list[dict[str, Any]]) -> Table:
    out = Table(title="blast to the inbox with and without delivery controls")
    for column in ("size", "controls", "blast s", "users/s", "vs none (mean)", "redis after"):
        out.add_column(column, justify="right")
    for row in rows:
        nones = [r["blast_s"] for r in rows if r["size"] == row["size"] and r["controls"] == "none"]
        base = sum(nones) / len(nones)
        out.add_row(
            f"{row['size']:,}",
            row["controls"],
            f"{row['blast_s']:.1f}",
            f"{row['users_per_s']:,.0f}",
            f"{row['blast_s'] / base:.2f}x",
            str(row.get("redis_used_memory_after", "")),
        )
    return out


def gate_table(gate: dict[str, Any]) -> Table:
    out = Table(title="the gate alone (every control, pages of 1,000)")
    for column in ("users", "seconds", "users/s"):
        out.add_column(column, justify="right")
    out.add_row(f"{gate['users']:,}", f"{gate['seconds']:.2f}", f"{gate['users_per_s']:,}")
    return out
