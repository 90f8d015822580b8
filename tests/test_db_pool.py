"""The shared pool plans each query for its tables as they are, not as they were."""

from __future__ import annotations

from activities.db.pool import DbPool

PROBE = "SELECT count(*) FROM journey_entries WHERE run_id = $1 AND event_id = ANY($2::text[])"


async def test_pool_queries_never_keep_a_generic_plan(pool: DbPool) -> None:
    # PostgreSQL switches a prepared statement to a generic plan after five runs and keeps
    # it while the table grows; the pool's connections must plan every run afresh
    async with pool.acquire() as conn:
        for _ in range(8):
            await conn.fetchval(PROBE, "plan-probe", ["e1", "e2"])
        plans = await conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            PROBE,
        )
    assert plans is not None
    assert (plans["generic_plans"], plans["custom_plans"]) == (0, 8)
