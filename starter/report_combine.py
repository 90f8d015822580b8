"""Several runs' reports as one (``journeys report PLAN --runs N``): their funnels added
node by node, their arms added arm by arm and compared again, their conversions hour by
hour; the status is the newest run's. Users who took part in two runs count in each, as each
run targeted them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from journeys.arm_stats import ArmCounts
from journeys.contracts.counters import RunStatus
from journeys.roi import roi

from .report_arms import Extras, compared
from .report_models import ArmReport, ConversionsAt, NodeFunnel, RunReport

_SUMMED = ("sent", "deferred", "pending", "receipts", "opened", "clicked", "negative")


def combine(plan_id: str, reports: Sequence[RunReport]) -> RunReport:
    """One report over ``reports`` (a plan's runs, any versions), named after the plan."""
    nodes: dict[str, NodeFunnel] = {}
    for report in reports:
        for funnel in report.nodes:
            into = nodes.setdefault(funnel.node, NodeFunnel(node=funnel.node))
            into.channel = funnel.channel
            for name in _SUMMED:
                setattr(into, name, getattr(into, name) + getattr(funnel, name))
            into.cost += funnel.cost
            into.negative_value += funnel.negative_value
            for reason, n in funnel.skipped.items():
                into.skipped[reason] = into.skipped.get(reason, 0) + n
            for reason, n in funnel.failed.items():
                into.failed[reason] = into.failed.get(reason, 0) + n
    hours: dict[object, ConversionsAt] = {}
    for report in reports:
        for point in report.timeline:
            at = hours.setdefault(point.at, ConversionsAt(at=point.at, conversions=0, value=0))
            at.conversions += point.conversions
            at.value += point.value
    value = sum(r.value for r in reports)
    cost = sum(r.cost for r in reports)
    negative = sum(r.negative_value for r in reports)
    return RunReport(
        run_id=f"{plan_id}: {len(reports)} runs",
        plan_id=plan_id,
        version=max((r.version for r in reports), default=0),
        status=_status(reports),
        targeted=sum(r.targeted for r in reports),
        delivered=sum(r.delivered for r in reports),
        receipts=sum(r.receipts for r in reports),
        opened=sum(r.opened for r in reports),
        clicked=sum(r.clicked for r in reports),
        converted=sum(r.converted for r in reports),
        value=value,
        negative=sum(r.negative for r in reports),
        negative_value=negative,
        cost=cost,
        roi=roi(value=value, cost=cost, negative=negative),
        nodes=[nodes[k] for k in sorted(nodes)],
        splits=_splits(reports),
        timeline=[hours[k] for k in sorted(hours, key=lambda at: hours[at].at)],
    )


def _status(reports: Sequence[RunReport]) -> RunStatus:
    """The newest run's (``reports`` are oldest first)."""
    return reports[-1].status if reports else RunStatus.COMPLETED


def _splits(reports: Sequence[RunReport]) -> dict[str, list[ArmReport]]:
    sums: dict[str, dict[str, tuple[ArmCounts, Extras]]] = defaultdict(dict)
    values: dict[tuple[str, str], float] = defaultdict(float)
    for report in reports:
        for node, arms in report.splits.items():
            for arm in arms:
                fresh = ArmCounts(arm=arm.arm, control=arm.control, users=0, converted=0)
                counts, extra = sums[node].setdefault(arm.arm, (fresh, Extras()))
                counts.users += arm.users
                counts.converted += arm.converted
                values[(node, arm.arm)] += arm.value
                extra.messages += arm.messages
                extra.cost += arm.cost
                extra.clicked += arm.clicked
                extra.negative += arm.negative
                extra.negative_value += arm.negative_value
    return {
        node: compared([(c, values[(node, a)], e) for a, (c, e) in sorted(sums[node].items())])
        for node in sorted(sums)
    }
