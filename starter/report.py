"""``journeys report RUN``: what a run did, node by node and arm by arm, from SQL.

Sends, skips by reason and failures come from the ledger (``deliveries``); receipts, opens,
clicks and negative events from ``engagements`` (:mod:`activities.engagement`); A/B arms from
``assignments``; conversions and their value from ``conversions`` (a user's first conversion
per split counts for its arm); the run's targeted count from the run itself. A message costs
its channel's ``cost`` in the channels file the report reads. Arms carry their rate, 95%
interval, lift and p-value (:mod:`journeys.arm_stats`), and each run and arm its ROI
(:mod:`journeys.roi`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.db import plan_store, queries
from activities.db.pool import DbPool
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import PlanRunResult
from journeys.errors import NotFound
from journeys.roi import roi
from workflows import search

from .report_arms import split_reports
from .report_models import ConversionsAt, NodeFunnel, RunReport, WinnerDecision
from .run_state import final_progress

__all__ = ["RunReport", "run_report"]


async def run_report(
    pool: DbPool, client: Client, run_id: str, *, costs: Mapping[str, float] | None = None
) -> RunReport:
    """The report of ``run_id`` (which Temporal still knows); :class:`NotFound` if not.
    ``costs``: channel -> price of one message (the channels file's ``cost``)."""
    costs = costs or {}
    plan_id, version, status, targeted = await _run_facts(client, run_id)
    plan = await plan_store.load(pool, plan_id, version) if plan_id and version else None
    # the aggregates are independent: each on a connection of its own, at once
    nodes, total, timeline, winners = await asyncio.gather(
        _nodes(pool, run_id, costs),
        pool.fetchrow(queries.REPORT_CONVERSIONS, run_id),
        pool.fetch(queries.REPORT_TIMELINE, run_id),
        pool.fetch(queries.REPORT_WINNERS, run_id),
    )
    splits = await split_reports(pool, run_id, costs=costs, plan=plan, nodes=nodes)
    assert total is not None  # an aggregate always has its row
    value = float(total["value"])
    cost = sum(n.cost for n in nodes)
    negative_value = sum(n.negative_value for n in nodes)
    return RunReport(
        run_id=run_id,
        plan_id=plan_id,
        version=version,
        status=status,
        targeted=targeted,
        delivered=sum(n.sent for n in nodes),
        receipts=sum(n.receipts for n in nodes),
        opened=sum(n.opened for n in nodes),
        clicked=sum(n.clicked for n in nodes),
        converted=int(total["users"]),
        value=value,
        negative=sum(n.negative for n in nodes),
        negative_value=negative_value,
        cost=cost,
        roi=roi(value=value, cost=cost, negative=negative_value),
        nodes=nodes,
        splits=splits,
        timeline=[
            ConversionsAt(at=r["at"], conversions=int(r["conversions"]), value=float(r["value"]))
            for r in timeline
        ],
        winners={
            r["node_id"]: WinnerDecision(
                arm=r["arm"],
                significant=r["significant"],
                metric=r["metric"],
                decided_at=r["decided_at"],
                figures=r["figures"],
                sent_to_winner=int(r["sent_to_winner"]),
            )
            for r in winners
        },
    )


async def _run_facts(client: Client, run_id: str) -> tuple[str, int, RunStatus, int]:
    handle = client.get_workflow_handle(run_id, result_type=PlanRunResult)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no run {run_id!r}") from None
        raise
    attributes = described.typed_search_attributes
    plan_id, version = attributes.get(search.PLAN_ID), attributes.get(search.PLAN_VERSION)
    if described.status == WorkflowExecutionStatus.RUNNING:  # its worker answers the query
        progress = await final_progress(handle)
        status, targeted = progress.status, progress.totals.targeted
    else:  # an ended run's result needs no worker
        result = await handle.result()
        status, targeted = result.status, result.totals.targeted
    return plan_id or "", version or 0, status, targeted


async def _nodes(pool: DbPool, run_id: str, costs: Mapping[str, float]) -> list[NodeFunnel]:
    nodes: dict[str, NodeFunnel] = {}
    delivered, engaged = await asyncio.gather(
        pool.fetch(queries.REPORT_DELIVERIES, run_id),
        pool.fetch(queries.REPORT_ENGAGEMENT, run_id),
    )
    for row in delivered:
        node = nodes.setdefault(row["node_id"], NodeFunnel(node=row["node_id"]))
        node.channel = row["channel"]
        ended, reason, users = row["status"], row["reason"] or "", int(row["users"])
        if ended == "sent":
            node.sent += users
            node.cost += users * costs.get(row["channel"], 0.0)
        elif ended == "skipped":
            node.skipped[reason] = node.skipped.get(reason, 0) + users
        elif ended == "deferred":
            node.deferred += users
        elif ended == "failed":
            node.failed[reason] = node.failed.get(reason, 0) + users
        else:
            node.pending += users
    for row in engaged:
        node = nodes.setdefault(row["node_id"], NodeFunnel(node=row["node_id"]))
        count = int(row["messages"])
        if row["kind"] == "negative":
            node.negative, node.negative_value = count, float(row["cost"])
        else:
            setattr(node, "receipts" if row["kind"] == "delivered" else row["kind"], count)
    return [nodes[k] for k in sorted(nodes)]
