"""Terminal output: rich for people, JSON for scripts, one line per error."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from journeys.redact import redact

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Print ``data`` (models included) as indented JSON on stdout, nothing else."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    out.print_json(json.dumps(data, default=str))


def error_line(message: str) -> None:
    """The one readable line a failing command prints."""
    message = redact(message)
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    rest = message.strip().splitlines()[1:]
    err.print(f"[bold red]error:[/] {escape(first)}", markup=True, soft_wrap=True)
    for line in rest:  # multi-problem errors (plan files) list one problem per line
        err.print(line, markup=False, soft_wrap=True)
