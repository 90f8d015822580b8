"""Scenario ``triggers``: trigger-to-send latency of an API-triggered journey with no wait.

The ``events`` scenario's loads (steady 200/s open loop, then a ceiling), with the users
entered by ``POST /v1/plans/{plan_id}/entries`` (``Journeys.trigger``, one request per batch)
instead of events: the plan's entry is ``api``, its one step sends to the ``inbox`` channel.
Latency = the inbox row's ``created_at`` minus the moment the batch was due.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from journeys.events import api_entry_event
from journeys.settings import Settings
from starter.client import Journeys
from tests.engine import for_test

from .blast import CHANNEL, write_channels
from .events import TICK, ingest_api, latency_table, measure
from .results import save

RUNS = (  # (shards, flush_every): the default shard count at two flush intervals, then 4 shards
    (1, timedelta(milliseconds=100)),
    (1, timedelta(milliseconds=200)),
    (4, timedelta(milliseconds=200)),
)


async def post_triggers(
    journeys: Journeys, plan_id: str, batch: list[tuple[str, datetime]]
) -> None:
    """One request per batch; the due time rides in the context (templates could read it)."""
    entries = [{"user_id": user, "context": {"due": due.isoformat()}} for user, due in batch]
    await journeys.trigger(plan_id, entries=entries)


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """Measure steady latency and the ceiling of API entries, print the table, save JSON."""
    del sizes
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-triggers-") as tmp:
        own = for_test(settings, write_channels(Path(tmp)))
        async with ingest_api(own) as url:
            for shards, flush_every in RUNS:
                plan_file, plan_id = write_api_plan(
                    Path(tmp), shards=shards, flush_every=flush_every
                )
                rows += await measure(
                    own,
                    plan_file,
                    url=url,
                    shape=(shards, flush_every),
                    post=post_triggers,
                    listens_for=api_entry_event(plan_id),
                    scenario="triggers",
                )
    Console(width=160).print(latency_table(rows, title="triggers: trigger-to-send latency"))
    return save("triggers", rows=rows, tick_ms=TICK / timedelta(milliseconds=1))


def write_api_plan(directory: Path, *, shards: int, flush_every: timedelta) -> tuple[Path, str]:
    """An API entry for anyone, one send to the inbox, open for an hour."""
    plan_id = f"bench-triggers-{uuid.uuid4().hex[:6]}"
    body = {
        "id": plan_id,
        "name": "Trigger latency bench",
        "shards": shards,
        "audience": {"source": "all"},
        "entry": {
            "type": "api",
            "flush_every": f"{round(flush_every / timedelta(milliseconds=1))}ms",
            "window": {"end": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        },
        "steps": {"hello": {"type": "send", "channel": CHANNEL, "template": "hello"}},
    }
    path = directory / f"{plan_id}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path, plan_id
