"""``journeys report PLAN --runs N``: a plan's last runs side by side, the execution view.

For each run: when it was due (a schedule's occurrence time, or a launch's ``--at``) and when
its first workflow task ran (the history's first ``WorkflowTaskStarted``: the moment a worker
took it up, so a worker that was down shows as a late start), how long it took, its status,
the success rate (delivered over targeted), skips and failures by reason, and the funnel and
money of :func:`starter.report.run_report`. Totals add the runs up; the trend compares the
oldest run shown with the newest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from activities.db.pool import DbPool
from journeys.errors import NotFound
from journeys.plan.common import PLAN_ID_PATTERN
from journeys.roi import roi
from workflows import search

from .report import RunReport, run_report
from .report_combine import combine

MAX_RUNS = 100


class RunExecution(BaseModel):
    """One run in a plan's execution view."""

    run_id: str
    version: int
    status: str
    due_at: datetime
    started_at: datetime | None
    """When a worker first took the run up (None: not yet)."""
    start_delay: timedelta | None
    duration: timedelta | None
    """From the first task to the close (None while it runs)."""
    targeted: int
    delivered: int
    success_rate: float | None
    skipped: dict[str, int] = Field(default_factory=dict)
    failed: dict[str, int] = Field(default_factory=dict)
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    value: float = 0.0
    cost: float = 0.0
    roi: float | None = None


class PlanReport(BaseModel):
    """A plan's last runs, oldest first, with their totals and the trend."""

    plan_id: str
    runs: list[RunExecution]
    targeted: int
    delivered: int
    converted: int
    value: float
    cost: float
    negative_value: float
    roi: float | None
    success_trend: float | None
    """Newest run's success rate minus the oldest's (None with fewer than two)."""
    combined: RunReport
    """The runs' reports as one: funnel per node, arms compared over all of them."""


async def plan_report(
    pool: DbPool,
    client: Client,
    plan_id: str,
    *,
    runs: int = 10,
    costs: Mapping[str, float] | None = None,
) -> PlanReport:
    """The last ``runs`` runs of ``plan_id``; :class:`NotFound` when it has none."""
    if not re.fullmatch(PLAN_ID_PATTERN, plan_id):  # it goes into a visibility query
        raise NotFound(f"no plan {plan_id[:80]!r}: plan ids are lowercase letters, digits and -")
    query = f'JourneyPlanId = "{plan_id}" AND WorkflowType = "PlanRunWorkflow"'
    found: dict[str, WorkflowExecution] = {}
    async for execution in client.list_workflows(query, limit=4 * min(runs, MAX_RUNS)):
        if execution.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
            continue  # its successor, listed too, is the run
        found.setdefault(execution.id, execution)
    newest = sorted(found.values(), key=lambda e: (e.start_time, e.id), reverse=True)
    chosen = newest[: min(runs, MAX_RUNS)][::-1]
    if not chosen:
        raise NotFound(f"plan {plan_id!r} has no runs that Temporal still keeps")
    views = [await _execution(pool, client, e, costs=costs) for e in chosen]
    reports = [report for _, report in views]
    cost = sum(r.cost for r in reports)
    value = sum(r.value for r in reports)
    negative = sum(r.negative_value for r in reports)
    rates = [v.success_rate for v, _ in views if v.success_rate is not None]
    return PlanReport(
        plan_id=plan_id,
        runs=[view for view, _ in views],
        targeted=sum(r.targeted for r in reports),
        delivered=sum(r.delivered for r in reports),
        converted=sum(r.converted for r in reports),
        value=value,
        cost=cost,
        negative_value=negative,
        roi=roi(value=value, cost=cost, negative=negative),
        success_trend=rates[-1] - rates[0] if len(rates) >= 2 else None,
        combined=combine(plan_id, reports),
    )


async def _execution(
    pool: DbPool, client: Client, execution: WorkflowExecution, *, costs: Mapping[str, float] | None
) -> tuple[RunExecution, RunReport]:
    report = await run_report(pool, client, execution.id, costs=costs)
    scheduled = execution.typed_search_attributes.get(search.SCHEDULED_START)
    due = scheduled or execution.execution_time or execution.start_time
    started = await _first_task(client, execution)
    closed = execution.close_time
    skipped: dict[str, int] = {}
    failed: dict[str, int] = {}
    for node in report.nodes:
        for reason, n in node.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
        for reason, n in node.failed.items():
            failed[reason] = failed.get(reason, 0) + n
    view = RunExecution(
        run_id=execution.id,
        version=report.version,
        status=report.status.value,
        due_at=due,
        started_at=started,
        start_delay=max(started - due, timedelta(0)) if started else None,
        duration=closed - started if closed and started else None,
        targeted=report.targeted,
        delivered=report.delivered,
        success_rate=report.delivered / report.targeted if report.targeted else None,
        skipped=skipped,
        failed=failed,
        opened=report.opened,
        clicked=report.clicked,
        converted=report.converted,
        value=report.value,
        cost=report.cost,
        roi=report.roi,
    )
    return view, report


async def _first_task(client: Client, execution: WorkflowExecution) -> datetime | None:
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
    async for event in handle.fetch_history_events(page_size=8):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            return event.event_time.ToDatetime(tzinfo=UTC)
        if event.event_id >= 8:  # the first task is among the first events, or not yet run
            break
    return None
