"""Where benchmark results go: one JSON file per run, stamped with the machine and commit."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

RESULTS = Path(__file__).resolve().parent / "results"


def commit() -> str | None:
    """``git rev-parse --short HEAD``, marked when the tree has uncommitted work."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head} plus uncommitted work" if dirty else head


def memory_gib() -> float | None:
    """The machine's memory (``MemTotal`` of /proc/meminfo), in GiB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def save(scenario: str, *, rows: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    """Write ``bench/results/{scenario}-{timestamp}.json`` (a run never overwrites another)."""
    now = datetime.now(UTC)
    result = {
        "scenario": scenario,
        "date": now.isoformat(timespec="seconds"),
        "commit": commit(),
        "nproc": os.cpu_count(),
        "memory_gib": memory_gib(),
        **params,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{scenario}-{now:%Y-%m-%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    Console().print(f"results: {path}")
    return result
