"""A plan with a schedule entry as a Temporal Schedule: its spec, policy and action.

``journeys launch`` of such a plan creates the schedule (or points it at the new version);
each occurrence then starts one ``PlanRunWorkflow``. The mapping from the plan file to
Temporal's schedule is one pure function, :func:`plan_schedule`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.db import audit_log
from activities.db.pool import DbPool
from journeys.audit import AuditRecord
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import PlanRunInput
from journeys.names import run_workflow_id
from journeys.plan.entry import ScheduleEntry
from journeys.plan.models import Plan
from journeys.policy import Policy, launch_policy
from journeys.settings import Settings
from workflows import search
from workflows.plan_run import PlanRunWorkflow

from .launching import publish_launchable

OVERLAP = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}
SCHEDULED_RUN_KEY = "sched"
"""Temporal appends each occurrence's time to the action's workflow id, so an occurrence's run
id is ``plan/{id}/v{N}/sched-{time}``: one run per occurrence, whatever retries the start."""


def schedule_id(plan_id: str) -> str:
    """``plan/{plan_id}``: one schedule per plan, named like its runs in the UI."""
    return f"plan/{plan_id}"


def plan_schedule(plan: Plan, *, version: int, task_queue: str, policy: Policy | None) -> Schedule:
    """The Temporal Schedule that starts a run of ``plan`` v``version`` per occurrence."""
    entry = plan.entry
    if not isinstance(entry, ScheduleEntry):
        raise ValueError(f"plan {plan.id} has a {entry.type} entry, not a schedule")
    spec = ScheduleSpec(
        cron_expressions=[entry.cron] if entry.cron is not None else [],
        intervals=[ScheduleIntervalSpec(every=entry.every)] if entry.every is not None else [],
        start_at=entry.start,
        end_at=entry.end,
        time_zone_name=entry.timezone or plan.timezone,
    )
    action = ScheduleActionStartWorkflow(
        PlanRunWorkflow.run,
        PlanRunInput(
            plan_id=plan.id,
            version=version,
            run_key=SCHEDULED_RUN_KEY,
            policy=policy,
            delivery_controls=True,
        ),
        id=run_workflow_id(plan.id, version, SCHEDULED_RUN_KEY),
        task_queue=task_queue,
        static_summary=f"{plan.id} v{version} · {plan.name} (scheduled)",
        typed_search_attributes=search.run_attributes(
            plan_id=plan.id,
            version=version,
            run_key=SCHEDULED_RUN_KEY,
            status=RunStatus.STARTING.value,
            transactional=plan.transactional,
        ),
    )
    return Schedule(
        action=action,
        spec=spec,
        policy=SchedulePolicy(overlap=OVERLAP[entry.overlap], catchup_window=entry.catchup_window),
        state=ScheduleState(note=f"{plan.name}: plan {plan.id} v{version}"),
    )


class Scheduled(BaseModel):
    """What ``journeys launch`` did with a plan that has a schedule entry."""

    schedule_id: str
    plan_id: str
    version: int
    published: bool
    created: bool
    """False: the schedule existed and now starts the new version."""
    next_runs: list[datetime]
    ui_url: str


async def launch_schedule(
    settings: Settings,
    *,
    client: Client,
    pool: DbPool,
    plan: Plan,
    plan_file: Path,
    policy: Policy | None = None,
    by: str | None = None,
) -> Scheduled:
    """Publish ``plan`` if it changed and create its schedule, or point the existing one at
    the new version (keeping it paused if it was). The policy is read now and kept by the
    schedule's runs, as a launch's is; launching again refreshes it. Approval, when the
    policy requires it, is asked of the version as a launch asks it."""
    policy = launch_policy(plan, policy, path=settings.policy_file)
    info = await publish_launchable(pool, plan, plan_file=plan_file, policy=policy, by=by)
    schedule = plan_schedule(
        plan, version=info.version, task_queue=settings.temporal_task_queue, policy=policy
    )
    sid = schedule_id(plan.id)
    created = True
    try:
        handle = await client.create_schedule(sid, schedule, memo={"plan": plan.name})
    except ScheduleAlreadyRunningError:
        created = False
        handle = client.get_schedule_handle(sid)
        await _replace(handle, schedule)
    described = await handle.describe()
    await audit_log.record(
        pool,
        AuditRecord(actor=by or "unknown", action="schedule", plan_id=plan.id,
                    version=info.version, subject=sid, detail={"created": created}),
    )  # fmt: skip
    return Scheduled(
        schedule_id=sid,
        plan_id=plan.id,
        version=info.version,
        published=info.created,
        created=created,
        next_runs=list(described.info.next_action_times[:3]),
        ui_url=f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
        f"/schedules/{quote(sid, safe='')}",
    )


async def update_schedule(settings: Settings, *, client: Client, plan: Plan, version: int) -> bool:
    """Point ``plan``'s schedule at ``version`` (``journeys publish``); False when the plan
    has no schedule yet (a launch creates it)."""
    policy = launch_policy(plan, None, path=settings.policy_file)
    schedule = plan_schedule(
        plan, version=version, task_queue=settings.temporal_task_queue, policy=policy
    )
    handle = client.get_schedule_handle(schedule_id(plan.id))
    try:
        await _replace(handle, schedule)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def _replace(handle: ScheduleHandle, schedule: Schedule) -> None:
    """The new spec, policy and action, keeping the schedule's state (paused or not)."""

    def keep_state(current: ScheduleUpdateInput) -> ScheduleUpdate:
        state = current.description.schedule.state
        return ScheduleUpdate(schedule=replace(schedule, state=state))

    await handle.update(keep_state)
