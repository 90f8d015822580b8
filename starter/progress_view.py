"""Rich renderings of a run's progress and result."""

from __future__ import annotations

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table

from journeys.contracts.counters import Counters
from journeys.contracts.runs import PlanRunResult, RunProgress


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) or "-"


def _deferred(c: Counters) -> str:
    """The users held back, by reason when the counters know them."""
    return f"{c.deferred} ({_reasons(c.deferred_by)})" if c.deferred_by else str(c.deferred)


def _node(c: Counters) -> str:
    """What a node did: its routes, or its deliveries, and who waits there."""
    done = _reasons(c.routes) if c.routes else str(c.delivered or c.entered)
    return done + (f" (+{c.waiting} waiting)" if c.waiting else "")


def _bar(c: Counters) -> ProgressBar:
    return ProgressBar(total=max(c.targeted, 1), completed=c.ended, width=30)


def progress_table(progress: RunProgress, *, kind: str | None = None) -> Group:
    """Totals and one bar per shard; ``kind``: transactional or marketing, when known."""
    t = progress.totals
    head = Table.grid(padding=(0, 2))
    head.add_row("run", progress.run_id)
    if kind is not None:
        head.add_row("kind", kind)
    head.add_row("status", progress.status.value)
    head.add_row(
        "totals",
        f"{t.ended}/{t.targeted} journeys ended · {t.delivered} delivered · "
        f"skipped {_reasons(t.skipped)} · failed {_reasons(t.failed)} · "
        f"retrying {t.retrying} · deferred {_deferred(t)} · cancelled {t.cancelled}",
    )
    head.add_row(
        "journeys",
        f"completed {t.completed} · exited {t.exited} · converted {t.converted}"
        + (f" (value {t.value:g})" if t.value else ""),
    )
    head.add_row("progress", _bar(t))
    shards = Table("shard", "progress", "ended", "delivered", "failed", "status", "nodes")
    for s in progress.per_shard:
        c = s.counters
        nodes = ", ".join(f"{n}: {_node(x)}" for n, x in sorted(s.nodes.items()))
        shards.add_row(
            str(s.shard),
            _bar(c),
            f"{c.ended}/{c.targeted}",
            str(c.delivered),
            str(sum(c.failed.values())),
            s.status.value,
            nodes,
        )
    return Group(head, shards)


def result_table(result: PlanRunResult, *, kind: str | None = None) -> Table:
    """The summary of a finished run, one field per line (it stays readable when narrow)."""
    t = result.totals
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("run", result.run_id),
        *([("kind", kind)] if kind is not None else []),
        ("status", result.status.value),
        ("targeted", str(t.targeted)),
        ("delivered", str(t.delivered)),
        ("skipped", _reasons(t.skipped)),
        ("deferred", f"{_deferred(t)}; each settled once later"),
        ("failed", _reasons(t.failed)),
        ("journeys", f"completed {t.completed} · exited {t.exited} · cancelled {t.cancelled}"),
        ("converted", f"{t.converted}" + (f" (value {t.value:g})" if t.value else "")),
        ("took", f"{result.duration.total_seconds():.1f}s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
