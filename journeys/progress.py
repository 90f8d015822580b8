"""A run's progress put together from its shards' summaries: totals, waits, the one-line
details the Temporal UI shows. Pure functions, used by the run workflow and by the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from journeys.contracts.counters import Counters, RunStatus
from journeys.contracts.runs import ShardSummary, WaitingCohort


def merge_waits(waits: Iterable[WaitingCohort]) -> list[WaitingCohort]:
    """One entry per node and zone: the users held there and the earliest wake-up."""
    merged: dict[tuple[str, str], WaitingCohort] = {}
    for wait in waits:
        key = (wait.node, wait.zone or "")
        seen = merged.get(key)
        if seen is None:
            merged[key] = wait.model_copy()
        else:
            merged[key] = seen.model_copy(
                update={"users": seen.users + wait.users, "until": min(seen.until, wait.until)}
            )
    return [merged[key] for key in sorted(merged)]


def add_shard(totals: Counters, part: Counters) -> None:
    """Add one shard's counters into a run's ``totals``, levels (retrying, waiting) too."""
    totals.add(part)
    totals.retrying += part.retrying
    totals.waiting += part.waiting


def node_totals(summaries: Sequence[ShardSummary]) -> dict[str, Counters]:
    """Counters per node over every shard (``waiting`` included)."""
    nodes: dict[str, Counters] = {}
    for summary in summaries:
        for node in sorted(summary.nodes):
            add_shard(nodes.setdefault(node, Counters()), summary.nodes[node])
    return nodes


def details_line(status: RunStatus, totals: Counters, nodes: dict[str, Counters]) -> str:
    """The run in one line: status, targeted, delivered, waiting, failed, users by node."""
    parts = [
        status.value,
        f"{totals.targeted} targeted",
        f"{totals.delivered} delivered",
        f"{totals.waiting} waiting",
        f"{sum(totals.failed.values())} failed",
    ]
    standing = [f"{node} {c.waiting}" for node, c in sorted(nodes.items()) if c.waiting]
    if standing:
        parts.append("at " + ", ".join(standing))
    return " · ".join(parts)
