"""The targets of issue 6, checked against the results of one ``python -m bench`` run.

Each target is computed only from scenarios that ran; the table goes to the console and the
rows to ``bench/results/targets-{timestamp}.json`` with the machine and commit.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .results import save

HISTORY_LIMIT = 51_200  # Temporal's hard limit on events in one run's history
PAGE_SIZE = 1000


def check(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per target the given scenario results can answer."""
    rows: list[dict[str, Any]] = []
    upload = _largest(results.get("upload"))
    if upload is not None:
        rows.append(
            _row(f"upload of {upload['size']:,} ids within 2x its floor", upload["ratio"], 2.0)
        )
    blasts = [
        r
        for r in (results.get("blast") or {}).get("rows", [])
        if r.get("page_size") == PAGE_SIZE and "ratio" in r
    ]
    if blasts:
        big = max(blasts, key=lambda r: r["size"])
        rows.append(_row(f"blast of {big['size']:,} within 2x its floor", big["ratio"], 2.0))
        if "rows_ratio" in big:  # not a target: what the engine adds over its own rows
            rows.append(
                {
                    "target": f"(reference) blast of {big['size']:,} / its rows floor",
                    "achieved": big["rows_ratio"],
                    "bound": None,
                    "met": None,
                }
            )
        rows.append(
            _row(
                f"worker peak RSS at {big['size']:,} under 1 GiB (MiB)",
                big["peak_rss_mib"],
                1024.0,
            )
        )
        events = big["largest_history"]["events"]
        rows.append(
            _row(
                "largest history within 10% of the event limit (%)",
                round(100 * events / HISTORY_LIMIT, 1),
                10.0,
            )
        )
        if len(blasts) > 1:
            rates = [r["users_per_s"] for r in sorted(blasts, key=lambda r: r["size"])]
            sizes = ", ".join(f"{r['size']:,}" for r in sorted(blasts, key=lambda r: r["size"]))
            rows.append(
                _row(
                    f"cost per user flat over {sizes} (slowest / fastest)",
                    round(max(rates) / min(rates), 2),
                    1.5,
                )
            )
    per_user = next(
        (r for r in (results.get("per_user") or {}).get("rows", []) if "journeys_x" in r), None
    )
    if per_user is not None:
        rows.append(
            _row(
                f"blast at least 20x the per-user design at {per_user['size']:,} (x)",
                per_user["journeys_x"],
                20.0,
                at_least=True,
            )
        )
    return rows


def report(results: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Print and save the targets table; None when no scenario that has a target ran."""
    rows = check(results)
    if not rows:
        return None
    table = Table(title="issue 6 targets")
    for name, justify in (("target", "left"), ("achieved", "right"), ("bound", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("met")
    for row in rows:
        bound = "" if row["bound"] is None else f"{row['bound']:,}"
        met = "" if row["met"] is None else "yes" if row["met"] else "NO"
        table.add_row(row["target"], f"{row['achieved']:,}", bound, met)
    Console().print(table)
    return save("targets", rows=rows)


def _largest(result: dict[str, Any] | None) -> dict[str, Any] | None:
    rows = [r for r in (result or {}).get("rows", []) if "ratio" in r]
    return max(rows, key=lambda r: r["size"]) if rows else None


def _row(target: str, achieved: float, bound: float, *, at_least: bool = False) -> dict[str, Any]:
    met = achieved >= bound if at_least else achieved <= bound
    return {"target": target, "achieved": achieved, "bound": bound, "met": met}
