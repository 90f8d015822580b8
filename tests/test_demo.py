"""`journeys demo` runs a real plan through the real workflows and exits with DEMO_EXIT=1."""

from __future__ import annotations

import asyncio
import re

from activities.db.pool import DbPool
from tests.conftest import spawn_journeys


async def test_demo_runs_the_welcome_blast(cli_env: dict[str, str], pool: DbPool) -> None:
    proc = await spawn_journeys("demo", env=cli_env | {"DEMO_EXIT": "1"})
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "audience new-signups: 2000 users in 16 shard sets" in text
    assert "external" in text  # the session's services were used, not started again
    run_id = await pool.fetchval(
        "SELECT run_id FROM deliveries WHERE run_id LIKE 'plan/welcome-blast/%' "
        "ORDER BY created_at DESC LIMIT 1"
    )
    assert run_id is not None and run_id in text
    sent = await pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE run_id = $1 AND status = 'sent'", run_id
    )
    popups = await pool.fetchval(
        "SELECT count(*) FROM inbox WHERE message_id LIKE $1 || ':%'", run_id
    )
    assert sent == popups == 2000
    assert "completed" in text
    # it ends with the run's report: the simulated app read every 4th and 10th popup
    assert re.search(r"opened\s+600", text) and re.search(r"clicked\s+200", text)
    engaged = await pool.fetch(
        "SELECT kind, count(*) AS n FROM engagements WHERE run_id = $1 GROUP BY kind", run_id
    )
    assert {r["kind"]: r["n"] for r in engaged} == {"opened": 600, "clicked": 200}
