"""Loading a plan file and collecting every problem in it at once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from journeys.channels_config import ChannelsFile
from journeys.errors import PlanInvalid, Problem
from journeys.plan.crosscheck import plan_level_problems
from journeys.plan.graph import graph_problems
from journeys.plan.models import Plan
from journeys.plan.problems import CROSS_CHECK, problems_from_error, sorted_problems
from journeys.plan.references import channel_problems
from journeys.plan.source import DocumentError, read_document


def check_plan(data: object, *, channels: ChannelsFile | None) -> tuple[Plan | None, list[Problem]]:
    """Validate a parsed plan document.

    Returns the plan and no problems, or ``None`` and every problem found, sorted by path. The
    graph and cross-section checks read the raw document, so they are reported even when some
    steps fail validation. With ``channels=None`` channel and template names are not checked.
    """
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        return None, [
            Problem("", f"a plan must be a mapping of fields (id, entry, steps...), got {kind}")
        ]
    problems: list[Problem] = []
    plan: Plan | None = None
    whole_plan: list[Problem] = []
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        # the model's own whole-plan checks are repeated below on the raw document, where they
        # get exact paths and run even when some sections are broken
        problems.extend(problems_from_error(exc, skip={CROSS_CHECK}))
        whole_plan = problems_from_error(exc)
    problems.extend(graph_problems(data))
    problems.extend(plan_level_problems(data))
    if channels is not None:
        problems.extend(channel_problems(data, channels))
    if plan is None and not problems:
        problems = whole_plan  # never report an invalid plan without saying why
    problems = sorted_problems(problems)
    return (plan if not problems else None), problems


def load_plan(path: Path, *, channels: ChannelsFile | None) -> Plan:
    """Read a YAML (``.yaml``/``.yml``) or JSON (``.json``) plan file and validate it.

    Raises :class:`~journeys.errors.PlanInvalid` listing every problem; a syntax error is one
    problem giving its line and column.
    """
    try:
        data = read_document(path)
    except DocumentError as exc:
        raise PlanInvalid(str(path), [exc.problem]) from None
    plan, problems = check_plan(data, channels=channels)
    if plan is None:
        raise PlanInvalid(str(path), problems)
    return plan
