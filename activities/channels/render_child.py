"""The render child: where templates that run Jinja code are rendered, under an address-space
limit, so a template that gets past every estimate costs this process, never the worker.

``python -m activities.channels.render_child``, driven by :mod:`activities.channels.isolated`
over JSON lines. The first line on stdin is the setup (``channels``, ``limits``,
``memory_bytes``), answered ``{"ready": true}``; each later line is a page (``channel``,
``template``, ``vars``, ``users``: ``[{"user": ..., "event": ...}]``), answered with one line
per user, in order, as each is done: ``{"ok": {field: text}}`` or ``{"error": [category,
reason]}``.
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from activities.channels.render import Renderer, RenderError
from journeys.channels_config import ChannelsFile
from journeys.contracts import failures
from journeys.template_sandbox import TemplateLimits


def limit_memory(extra: int) -> None:
    """Cap this process's address space at what it uses now plus ``extra`` bytes: a larger
    allocation fails with MemoryError, which fails the one message being rendered."""
    status = Path("/proc/self/status")
    if not status.exists():  # not Linux: the time limit still holds
        return
    for line in status.read_text().splitlines():
        if line.startswith("VmSize:"):
            used = int(line.split()[1]) * 1024
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            cap = used + extra
            if hard != resource.RLIM_INFINITY:
                cap = min(cap, hard)
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
            return


def serve(source: IO[str], sink: IO[str]) -> None:
    """Answer pages from ``source`` until it closes."""
    setup = json.loads(source.readline())
    raw = setup["limits"]
    limits = TemplateLimits(
        max_chars=raw["max_chars"],
        time_limit=timedelta(seconds=raw["time_limit"]),
        max_steps=raw["max_steps"],
    )
    renderer = Renderer(ChannelsFile.model_validate(setup["channels"]), limits=limits)
    limit_memory(setup["memory_bytes"])
    sink.write('{"ready": true}\n')  # the parent's per-message clock starts after this
    sink.flush()
    for line in source:
        page = json.loads(line)
        for answer in _render_page(renderer, page):
            sink.write(json.dumps(answer, ensure_ascii=True) + "\n")
            sink.flush()  # the parent's clock runs per user: each answer goes when it is done


def _render_page(renderer: Renderer, page: dict[str, Any]) -> Iterator[dict[str, Any]]:
    users = page["users"]
    try:
        prepared = renderer.prepare(page["channel"], page["template"], vars=page["vars"])
    except RenderError as exc:
        yield from ({"error": [exc.category, exc.reason]} for _ in users)
        return
    except MemoryError:
        yield from (_out_of_memory() for _ in users)
        return
    for item in users:
        try:
            yield {"ok": prepared.render_user(item["user"], event=item["event"])}
        except RenderError as exc:
            yield {"error": [exc.category, exc.reason]}
        except MemoryError:
            yield _out_of_memory()


def _out_of_memory() -> dict[str, Any]:
    reason = "over the template limits: needed more memory than the renderer may use"
    return {"error": [failures.TEMPLATE_LIMITS, reason]}


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
