"""Rendering in child processes that can be stopped: the hard line behind the sandbox's bounds.

The sandbox (:mod:`journeys.template_sandbox`) refuses what it can estimate, with a clear
reason, but Python has more ways to make work than any estimate covers (a comparison of
two deep lists is one C call). So a template that runs Jinja code renders in a child
process (:mod:`activities.channels.render_child`) with an address-space limit, and the
parent gives each message a hard deadline: past it, or if the child dies, the child is
killed and replaced, that one message fails with ``template over limits``, and the page
goes on with the next user. Templates that only substitute names never come here.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import selectors
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from journeys.channels_config import ChannelsFile
from journeys.contracts import failures
from journeys.template_sandbox import TemplateLimits

from .render import PageUser, Rendered, RenderError

CHILD = [sys.executable, "-m", "activities.channels.render_child"]
STARTUP = 60.0
"""Seconds a new child may take to start (import, load the channels) before the page fails."""


class RenderChildUnavailable(RuntimeError):
    """No render child could be started: the page's activity fails and is retried."""


def hard_limit(limits: TemplateLimits) -> timedelta:
    """How long one message may take in the child before it is killed: the sandbox's own
    limit applies per field, so a message of several fields gets several, plus a second."""
    return limits.time_limit * 8 + timedelta(seconds=1)


class RenderChild:
    """One child process, used by one thread at a time; started when first needed."""

    def __init__(self, setup: str, *, limits: TemplateLimits) -> None:
        self._setup = setup
        self._hard = hard_limit(limits).total_seconds()
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""

    def render_page(
        self, channel: str, template: str, variables: Mapping[str, Any], users: Sequence[PageUser]
    ) -> list[Rendered]:
        """Each user's fields or failure, in order; a user the child cannot finish in time
        (or dies on) fails alone and the rest go on in a fresh child."""
        results: list[Rendered] = []
        pending = list(users)
        while pending:
            proc = self._running()
            page = {
                "channel": channel,
                "template": template,
                "vars": dict(variables),
                "users": [{"user": user, "event": event} for user, event in pending],
            }
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(page, ensure_ascii=True, default=str).encode() + b"\n")
            proc.stdin.flush()
            for done in range(len(pending)):
                line = self._readline(proc)
                if line is None:
                    results.append(self._stopped(proc))
                    pending = pending[done + 1 :]
                    break
                results.append(_answer(json.loads(line)))
            else:
                pending = []
        return results

    def close(self) -> None:
        """Stop the child, if there is one."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
            self._buffer = b""

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                CHILD,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # its tracebacks could quote user data
            )
            self._buffer = b""
            assert self._proc.stdin is not None
            self._proc.stdin.write(self._setup.encode() + b"\n")
            self._proc.stdin.flush()
            # a slow start (a busy machine importing Jinja) is not a message's fault: it gets
            # a clock of its own, and a child that never starts fails the page, to be retried
            if self._readline(self._proc, within=STARTUP) is None:
                self.close()
                raise RenderChildUnavailable("the render child did not start")
        return self._proc

    def _readline(
        self, proc: subprocess.Popen[bytes], *, within: float | None = None
    ) -> bytes | None:
        """The next answer line, or None past the deadline (the hard limit unless
        ``within``) or at the child's end."""
        assert proc.stdout is not None
        deadline = time.monotonic() + (self._hard if within is None else within)
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(timeout=left):
                    return None
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    return None
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _stopped(self, proc: subprocess.Popen[bytes]) -> RenderError:
        alive = proc.poll() is None
        self.close()
        why = (
            f"took longer than {self._hard:g} s and was stopped"
            if alive
            else "the renderer ran out of memory or crashed and was restarted"
        )
        return RenderError(f"over the template limits: {why}", category=failures.TEMPLATE_LIMITS)


def _answer(data: dict[str, Any]) -> Rendered:
    if "ok" in data:
        return {str(k): str(v) for k, v in data["ok"].items()}
    category, reason = data["error"]
    return RenderError(reason, category=failures.category(category))


class RenderPool:
    """``size`` render children, each with a thread of its own, for a worker's pages."""

    def __init__(self, channels: ChannelsFile, *, limits: TemplateLimits, size: int = 2) -> None:
        setup = json.dumps(
            {
                "channels": channels.model_dump(mode="json"),
                "limits": {
                    "max_chars": limits.max_chars,
                    "time_limit": limits.time_limit.total_seconds(),
                    "max_steps": limits.max_steps,
                },
                "memory_bytes": limits.max_memory,
            }
        )
        self._idle: queue.Queue[RenderChild] = queue.Queue()
        self._children = [RenderChild(setup, limits=limits) for _ in range(size)]
        for child in self._children:
            self._idle.put(child)
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="render")

    def render_page(
        self, channel: str, template: str, variables: Mapping[str, Any], users: Sequence[PageUser]
    ) -> list[Rendered]:
        """:meth:`RenderChild.render_page` on an idle child (blocking)."""
        child = self._idle.get()
        try:
            return child.render_page(channel, template, variables, users)
        finally:
            self._idle.put(child)

    async def render_page_async(
        self, channel: str, template: str, variables: Mapping[str, Any], users: Sequence[PageUser]
    ) -> list[Rendered]:
        """:meth:`render_page` on the pool's own threads (never the event loop's)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._threads, self.render_page, channel, template, variables, users
        )

    def close(self) -> None:
        """Stop every child and the threads."""
        self._threads.shutdown(wait=True)
        for child in self._children:
            child.close()
