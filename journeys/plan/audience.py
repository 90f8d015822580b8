"""Who a plan targets: an uploaded file, a saved list, a segment rule, SQL, everyone, or sets."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from journeys.plan.common import AudienceName, PlanModel, Text
from journeys.plan.sql_check import check_sql
from journeys.rules import Rule


class _Source(PlanModel):
    mode: Literal["snapshot", "per_run"] = "snapshot"
    """``snapshot``: evaluated once and reused by every run; ``per_run``: evaluated per run."""


class FileAudience(_Source):
    """User ids from a CSV / one-id-per-line file, path relative to the plan file."""

    source: Literal["file"] = "file"
    path: Text


class ListAudience(_Source):
    """A saved audience uploaded earlier with ``journeys audience upload``."""

    source: Literal["list"] = "list"
    name: AudienceName


class SegmentAudience(_Source):
    """The users (with a profile row) a rule selects, compiled to SQL by
    :mod:`journeys.rule_sql` when the run materialises its audience."""

    source: Literal["segment"] = "segment"
    rule: Rule


class SqlAudience(_Source):
    """The ``user_id`` column of a read-only query (rules: journeys.plan.sql_check)."""

    source: Literal["sql"] = "sql"
    query: Annotated[Text, AfterValidator(check_sql)]


class AllAudience(_Source):
    """Every known user."""

    source: Literal["all"] = "all"


class SetAudience(_Source):
    """A union / intersection / difference (first minus the others) of audiences."""

    source: Literal["union", "intersect", "difference"]
    of: list[Audience] = Field(min_length=2)

    @field_validator("of")
    @classmethod
    def _modes(cls, members: list[Audience]) -> list[Audience]:
        # members are evaluated together with the top level, so their own mode means nothing;
        # "snapshot" (the default) is accepted because serialised plans write it out
        for index, member in enumerate(members):
            if member.mode != "snapshot":
                raise ValueError(f"of.{index}: only the top-level audience sets mode")
        return members


Audience = Annotated[
    FileAudience | ListAudience | SegmentAudience | SqlAudience | AllAudience | SetAudience,
    Field(discriminator="source"),
]
"""Where the users come from, discriminated on ``source``."""

SetAudience.model_rebuild()
