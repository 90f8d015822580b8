"""``journeys report RUN``: what a run did, node by node and arm by arm, from SQL.

Sends, skips by reason and failures come from the ledger (``deliveries``), A/B arms from
``assignments``, conversions and their value from ``conversions`` (a user's first conversion
per split counts for its arm); the run's targeted count from the run itself. Arms carry
their rate, 95% interval, lift and p-value (:mod:`journeys.arm_stats`). Opens, clicks, ROI
and charts are not in it yet (issue 18 in progress); nothing here claims them.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel, Field
from rich.console import Group
from rich.table import Table
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.db import queries
from activities.db.pool import DbPool
from journeys.arm_stats import ArmCounts, ArmResult, compare_arms
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import PlanRunResult
from journeys.errors import NotFound
from workflows import search

from .run_state import final_progress


class NodeFunnel(BaseModel):
    """A send or webhook node's users by how their message ended."""

    node: str
    sent: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    deferred: int = 0
    failed: dict[str, int] = Field(default_factory=dict)
    pending: int = 0
    """Rows not settled yet (a run still going)."""


class ArmReport(ArmResult):
    """An arm compared, with the value its conversions brought."""

    value: float = 0.0


class RunReport(BaseModel):
    """The report of one run."""

    run_id: str
    plan_id: str
    version: int
    status: RunStatus
    targeted: int
    delivered: int
    converted: int
    """Users who converted at least once."""
    value: float
    nodes: list[NodeFunnel]
    splits: dict[str, list[ArmReport]]
    """A/B node -> its arms."""


async def run_report(pool: DbPool, client: Client, run_id: str) -> RunReport:
    """The report of ``run_id`` (which Temporal still knows); :class:`NotFound` if not."""
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
    nodes: dict[str, NodeFunnel] = {}
    for row in await pool.fetch(queries.REPORT_DELIVERIES, run_id):
        node = nodes.setdefault(row["node_id"], NodeFunnel(node=row["node_id"]))
        ended, reason, users = row["status"], row["reason"] or "", int(row["users"])
        if ended == "sent":
            node.sent += users
        elif ended == "skipped":
            node.skipped[reason] = node.skipped.get(reason, 0) + users
        elif ended == "deferred":
            node.deferred += users
        elif ended == "failed":
            node.failed[reason] = node.failed.get(reason, 0) + users
        else:
            node.pending += users
    arms: dict[str, list[tuple[ArmCounts, float]]] = defaultdict(list)
    for row in await pool.fetch(queries.REPORT_ARMS, run_id):
        counts = ArmCounts(
            arm=row["arm"],
            control=row["control"],
            users=int(row["users"]),
            converted=int(row["converted"]),
        )
        arms[row["node_id"]].append((counts, float(row["value"])))
    splits = {
        node: [
            ArmReport(**result.model_dump(), value=value)
            for result, (_, value) in zip(compare_arms([c for c, _ in got]), got, strict=True)
        ]
        for node, got in sorted(arms.items())
    }
    total = await pool.fetchrow(queries.REPORT_CONVERSIONS, run_id)
    assert total is not None  # an aggregate always has its row
    return RunReport(
        run_id=run_id,
        plan_id=plan_id or "",
        version=version or 0,
        status=status,
        targeted=targeted,
        delivered=sum(n.sent for n in nodes.values()),
        converted=int(total["users"]),
        value=float(total["value"]),
        nodes=[nodes[k] for k in sorted(nodes)],
        splits=splits,
    )


def report_view(report: RunReport) -> Group:
    """The report as rich tables: the run, its send nodes, each split's arms."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    for label, value in (
        ("run", report.run_id),
        ("plan", f"{report.plan_id} v{report.version} · {report.status.value}"),
        ("targeted", f"{report.targeted:,}"),
        ("delivered", f"{report.delivered:,}"),
        ("converted", f"{report.converted:,} users · value {report.value:,.2f}"),
    ):
        head.add_row(label, value)
    sends = Table("node", "sent", "skipped", "deferred", "failed", "pending", title="sends")
    for n in report.nodes:
        sends.add_row(
            n.node, f"{n.sent:,}", _counts(n.skipped), str(n.deferred), _counts(n.failed),
            str(n.pending),
        )  # fmt: skip
    parts: list[Table] = [head, sends]
    for node, arms in report.splits.items():
        table = Table(
            "arm", "users", "converted", "rate (95% CI)", "lift", "p-value", "value",
            title=f"arms of {node}",
        )  # fmt: skip
        for a in arms:
            table.add_row(
                a.arm + (" (control)" if a.control else ""),
                f"{a.users:,}",
                f"{a.converted:,}",
                _rate(a),
                "" if a.lift is None else f"{a.lift:+.1%}",
                "" if a.p_value is None else f"{a.p_value:.4f}",
                f"{a.value:,.2f}",
            )
        parts.append(table)
    return Group(*parts)


def _rate(arm: ArmResult) -> str:
    if arm.rate is None or arm.ci_low is None or arm.ci_high is None:
        return ""
    return f"{arm.rate:.2%} ({arm.ci_low:.2%} to {arm.ci_high:.2%})"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k or '-'} {v}" for k, v in sorted(counts.items()))
