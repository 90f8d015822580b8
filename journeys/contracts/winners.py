"""Payloads of the ``decide_winner`` activity (an ab_split's winning path)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class DecideWinnerInput(BaseModel):
    """Decide (once per run and node) where the rest of a split's users go."""

    run_id: str
    node: str
    metric: Literal["conversion", "click"]
    min_confidence: float
    arms: list[str]
    controls: list[bool]
    fallback: int | None
    """The arm for the rest when none wins (a blast); None: decide only on a win (event
    plans keep splitting)."""
    now: datetime
    dry_run: bool = False
    """Pick, but record nothing (``RunOptions.dry_run``)."""


class DecideWinnerOutput(BaseModel):
    """The arm the rest go to (None: undecided, keep splitting)."""

    arm: int | None
    significant: bool = False
