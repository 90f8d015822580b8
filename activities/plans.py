"""Activities that read plan versions for workflows (which may not do I/O themselves)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.db import plan_store
from activities.db.pool import DbPool
from journeys.contracts import activities as contracts
from journeys.contracts.run_setup import LoadPlanInput, LoadPlanOutput
from journeys.errors import NotFound


class PlanActivities:
    """Plan-store activities; the worker builds one with the shared pool."""

    def __init__(self, pool: DbPool) -> None:
        self._pool = pool

    @activity.defn(name=contracts.LOAD_PLAN_VERSION.name)
    async def load_plan_version(self, data: LoadPlanInput) -> LoadPlanOutput:
        """Load a pinned plan version; a missing version is a business failure, not retried."""
        try:
            plan = await plan_store.load(self._pool, data.plan_id, data.version)
        except NotFound as exc:
            raise ApplicationError(str(exc), type=exc.kind, non_retryable=True) from exc
        return LoadPlanOutput(plan=plan)
