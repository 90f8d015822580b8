"""Objects made outside the sandbox that a canary workflow lets go of inside an activation,
as the garbage collector may at any moment (see tests/test_sandbox_guard.py)."""

from __future__ import annotations

import gc

DROP: list[object] = []


def let_go() -> int:
    """Drop every object in ``DROP`` and collect, so their finalizers run in this thread."""
    dropped = len(DROP)
    DROP.clear()
    gc.collect()
    return dropped
