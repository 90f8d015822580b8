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

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.db import queries
from activities.db.pool import DbPool
from journeys.arm_stats import ArmCounts, ArmResult, compare_arms
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import PlanRunResult
from journeys.errors import NotFound
from journeys.roi import incremental_value, roi
from workflows import search

from .run_state import final_progress


class NodeFunnel(BaseModel):
    """A send or webhook node's messages by how they ended, and what became of them."""

    node: str
    channel: str = ""
    sent: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    deferred: int = 0
    failed: dict[str, int] = Field(default_factory=dict)
    pending: int = 0
    """Rows not settled yet (a run still going)."""
    receipts: int = 0
    """Messages the provider confirmed delivered (a channel's ``engagement.delivered``)."""
    opened: int = 0
    clicked: int = 0
    negative: int = 0
    """Messages a negative event (an unsubscribe...) was attributed to."""
    negative_value: float = 0.0
    cost: float = 0.0


class ArmReport(ArmResult):
    """An arm compared, with what its users' messages cost and brought."""

    value: float = 0.0
    messages: int = 0
    cost: float = 0.0
    clicked: int = 0
    """Users of the arm who clicked a message of the run."""
    negative: int = 0
    negative_value: float = 0.0
    roi: float | None = None
    incremental_value: float | None = None
    """Value beyond the control arm's, scaled to this arm's users (None for the control)."""


class WinnerDecision(BaseModel):
    """An ab_split's winning path: the arm chosen, whether it won or was the fallback, the
    figures it was chosen on, when, and how many users were sent there after."""

    arm: str
    significant: bool
    metric: str
    decided_at: datetime
    figures: dict[str, object]
    sent_to_winner: int


class ConversionsAt(BaseModel):
    """Conversions in one hour of the run (UTC)."""

    at: datetime
    conversions: int
    value: float


class RunReport(BaseModel):
    """The report of one run."""

    run_id: str
    plan_id: str
    version: int
    status: RunStatus
    targeted: int
    delivered: int
    receipts: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int
    """Users who converted at least once."""
    value: float
    negative: int = 0
    negative_value: float = 0.0
    cost: float = 0.0
    roi: float | None = None
    nodes: list[NodeFunnel]
    splits: dict[str, list[ArmReport]]
    """A/B node -> its arms."""
    timeline: list[ConversionsAt] = Field(default_factory=list)
    winners: dict[str, WinnerDecision] = Field(default_factory=dict)
    """ab_split node -> its winning path's decision (arms count only the users the test
    split)."""


async def run_report(
    pool: DbPool, client: Client, run_id: str, *, costs: Mapping[str, float] | None = None
) -> RunReport:
    """The report of ``run_id`` (which Temporal still knows); :class:`NotFound` if not.
    ``costs``: channel -> price of one message (the channels file's ``cost``)."""
    costs = costs or {}
    plan_id, version, status, targeted = await _run_facts(client, run_id)
    nodes = await _nodes(pool, run_id, costs)
    splits = await _splits(pool, run_id, costs)
    total = await pool.fetchrow(queries.REPORT_CONVERSIONS, run_id)
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
            for r in await pool.fetch(queries.REPORT_TIMELINE, run_id)
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
            for r in await pool.fetch(queries.REPORT_WINNERS, run_id)
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
    for row in await pool.fetch(queries.REPORT_DELIVERIES, run_id):
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
    for row in await pool.fetch(queries.REPORT_ENGAGEMENT, run_id):
        node = nodes.setdefault(row["node_id"], NodeFunnel(node=row["node_id"]))
        count = int(row["messages"])
        if row["kind"] == "negative":
            node.negative, node.negative_value = count, float(row["cost"])
        else:
            setattr(node, "receipts" if row["kind"] == "delivered" else row["kind"], count)
    return [nodes[k] for k in sorted(nodes)]


async def _splits(
    pool: DbPool, run_id: str, costs: Mapping[str, float]
) -> dict[str, list[ArmReport]]:
    arms: dict[str, list[tuple[ArmCounts, float]]] = defaultdict(list)
    for row in await pool.fetch(queries.REPORT_ARMS, run_id):
        counts = ArmCounts(
            arm=row["arm"],
            control=row["control"],
            users=int(row["users"]),
            converted=int(row["converted"]),
        )
        arms[row["node_id"]].append((counts, float(row["value"])))
    extras: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in await pool.fetch(queries.REPORT_ARM_MESSAGES, run_id):
        sums = extras[(row["node_id"], row["arm"])]
        sums["messages"] += int(row["sent"])
        sums["cost"] += int(row["sent"]) * costs.get(row["channel"], 0.0)
    for row in await pool.fetch(queries.REPORT_ARM_ENGAGEMENT, run_id):
        sums = extras[(row["node_id"], row["arm"])]
        if row["kind"] == "clicked":
            sums["clicked"] = int(row["users"])
        elif row["kind"] == "negative":
            sums["negative"], sums["negative_value"] = int(row["users"]), float(row["cost"])
    splits: dict[str, list[ArmReport]] = {}
    for node, got in sorted(arms.items()):
        control = next(((c, v) for c, v in got if c.control), None)
        reports = []
        for result, (counts, value) in zip(compare_arms([c for c, _ in got]), got, strict=True):
            extra = extras[(node, counts.arm)]
            cost, negative_value = extra["cost"], extra["negative_value"]
            reports.append(
                ArmReport(
                    **result.model_dump(),
                    value=value,
                    messages=int(extra["messages"]),
                    cost=cost,
                    clicked=int(extra["clicked"]),
                    negative=int(extra["negative"]),
                    negative_value=negative_value,
                    roi=roi(value=value, cost=cost, negative=negative_value),
                    incremental_value=(
                        None
                        if control is None or counts.control
                        else incremental_value(
                            value=value,
                            users=counts.users,
                            control_value=control[1],
                            control_users=control[0].users,
                        )
                    ),
                )
            )
        splits[node] = reports
    return splits
