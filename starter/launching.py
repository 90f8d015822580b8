"""Start a run: publish the plan if it changed, resolve the audience, start the workflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import redis.asyncio as aioredis
from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.audience.shard_sets import load_file_into_run
from activities.db import audit_log, plan_store
from activities.db.pool import DbPool
from journeys.audit import AuditRecord
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import AudienceRef, PlanRunInput, PlanRunResult, RunOptions
from journeys.errors import JourneysError
from journeys.names import run_workflow_id
from journeys.plan.audience import FileAudience
from journeys.plan.entry import ApiEntry, AtEntry, EventEntry, ImmediateEntry
from journeys.plan.models import Plan
from journeys.policy import Policy, launch_policy
from journeys.settings import Settings
from workflows import search
from workflows.plan_run import PlanRunWorkflow


class RunExists(JourneysError):
    """A run with this run key was started before."""


class Launched(BaseModel):
    """What ``journeys launch`` started."""

    run_id: str
    plan_id: str
    version: int
    published: bool
    targeted_from_file: int | None = None
    start_at: datetime | None = None
    ui_url: str
    awaiting_approval: bool = False
    """A dry run of a version the policy will not launch until it is approved."""


def ui_link(settings: Settings, run_id: str) -> str:
    """The run's page in the Temporal UI."""
    return (
        f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{quote(run_id, safe='')}"
    )


def start_time(plan: Plan, *, at: datetime | None) -> datetime | None:
    """When the run should start: ``--at``, else the plan's ``at`` entry, else now (None)."""
    if at is not None:
        return at
    if isinstance(plan.entry, AtEntry):
        return plan.entry.at
    if isinstance(plan.entry, ImmediateEntry):
        return None
    if isinstance(plan.entry, EventEntry | ApiEntry):
        # the run listens from the window's start (now when it has none, or it has begun)
        window = plan.entry.window
        return window.start if window is not None and window.start is not None else None
    raise JourneysError(
        f"plan {plan.id} has a {plan.entry.type} entry: it is launched as a schedule "
        "(starter.schedules.launch_schedule), one run per occurrence"
    )


def run_details(plan: Plan, *, version: int, run_id: str) -> str:
    """What the Temporal UI shows as the run's details: the plan in a few lines (markdown)."""
    audience = "everyone" if plan.audience is None else plan.audience.source
    lines = [
        f"**{plan.name}** ({plan.id} v{version})",
        "",
        *([plan.description.strip(), ""] if plan.description else []),
        f"- entry: {plan.entry.type}; audience: {audience}",
        f"- {len(plan.steps)} steps from `{plan.start_step}`, {plan.shards} shards",
        f"- live counts: the `progress` query, or `journeys status {run_id}`",
    ]
    return "\n".join(lines)


async def launch(
    settings: Settings,
    *,
    client: Client,
    pool: DbPool,
    redis: aioredis.Redis,
    plan: Plan,
    plan_file: Path,
    audience_file: Path | None = None,
    at: datetime | None = None,
    run_key: str | None = None,
    options: RunOptions | None = None,
    max_bad_share: float = 0.01,
    policy: Policy | None = None,
    by: str | None = None,
) -> tuple[Launched, WorkflowHandle[PlanRunWorkflow, PlanRunResult]]:
    """Publish ``plan`` if it changed and start one run of the pinned version, under
    ``policy`` (by default the settings' policy file, read now and kept by the run), as
    ``by`` in the audit log. Under ``approval: required`` an unapproved version is refused
    (:class:`NotApproved`) before anything starts."""
    begin = start_time(plan, at=at)
    policy = launch_policy(plan, policy, path=settings.policy_file)
    dry = options is not None and options.dry_run
    info = await publish_launchable(pool, plan, plan_file=plan_file, policy=policy, by=by, dry=dry)
    key = run_key or datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")[:-3]
    run_id = run_workflow_id(plan.id, info.version, key)
    await _refuse_existing(client, run_id)  # before touching the run's Redis keys
    if audience_file is None and isinstance(plan.audience, FileAudience):
        audience_file = (plan_file.parent / plan.audience.path).resolve()
    audience = AudienceRef()
    loaded: int | None = None
    if audience_file is not None:
        parsed, _ = await load_file_into_run(
            redis, audience_file, run_id=run_id, shards=plan.shards, max_bad_share=max_bad_share
        )
        audience = AudienceRef(preloaded=True)
        loaded = len(parsed.ids)
    delay = None
    if begin is not None:
        delay = max(timedelta(0), begin - datetime.now(UTC))
    try:
        handle = await client.start_workflow(
            PlanRunWorkflow.run,
            PlanRunInput(
                plan_id=plan.id,
                version=info.version,
                run_key=key,
                audience=audience,
                options=options or RunOptions(),
                policy=policy,
                delivery_controls=True,
            ),
            id=run_id,
            task_queue=settings.temporal_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=search.run_attributes(
                plan_id=plan.id,
                version=info.version,
                run_key=key,
                status=RunStatus.STARTING.value,
                transactional=plan.transactional,
            ),
            static_summary=f"{plan.id} v{info.version} · {plan.name}",
            static_details=run_details(plan, version=info.version, run_id=run_id),
            start_delay=delay or None,
        )
    except WorkflowAlreadyStartedError as exc:
        raise RunExists(f"run {run_id} already exists; pick another --run-key") from exc
    detail = {
        "start_at": begin.isoformat() if begin else None,
        "targeted_from_file": loaded,
        "dry_run": dry,
    }
    await audit_log.record(
        pool,
        AuditRecord(actor=by or "unknown", action="launch", plan_id=plan.id,
                    version=info.version, run_id=run_id, detail=detail),
    )  # fmt: skip
    launched = Launched(
        run_id=run_id,
        plan_id=plan.id,
        version=info.version,
        published=info.created,
        targeted_from_file=loaded,
        start_at=begin,
        ui_url=ui_link(settings, run_id),
        awaiting_approval=needs_approval(info, policy),
    )
    return launched, handle


async def publish_launchable(
    pool: DbPool,
    plan: Plan,
    *,
    plan_file: Path,
    policy: Policy | None,
    by: str | None,
    dry: bool = False,
) -> plan_store.VersionInfo:
    """Publish ``plan`` if it changed; the version, if the policy lets it launch. A dry run
    (which delivers nothing) may preview a version still awaiting approval."""
    info = await plan_store.publish(pool, plan, source=str(plan_file), by=by)
    if needs_approval(info, policy) and not dry:
        await plan_store.require_approval(pool, plan.id, info.version)
    return info


def needs_approval(info: plan_store.VersionInfo, policy: Policy | None) -> bool:
    """Whether ``info``'s version may not launch yet under ``policy``."""
    return policy is not None and policy.approval == "required" and not info.approved


async def _refuse_existing(client: Client, run_id: str) -> None:
    try:
        await client.get_workflow_handle(run_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return
        raise
    raise RunExists(f"run {run_id} already exists; pick another --run-key")
