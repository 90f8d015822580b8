"""Run a command's coroutine from typer's synchronous world."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` with uvloop-free defaults; Ctrl-C surfaces as KeyboardInterrupt."""
    return asyncio.run(coro)
