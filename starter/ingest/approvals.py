"""``POST /v1/plans/{plan_id}/versions/{version}/approval``: approve a version as an API key.

The approver is the key (``key:<name>``, an ``admin`` key), so over HTTP the name is proven,
where the CLI's ``--by`` is declared. While no key is configured the API is open and
cannot tell people apart, so it refuses to approve.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from activities.db import plan_store
from activities.db.pool import DbPool
from journeys.errors import AlreadyApproved, NotApproved, NotFound

from .access import OPEN_CALLER, caller
from .body import refused
from .openapi import Refusal

MAX_VERSION = 2**31 - 1  # the column is an integer
_VERSION = re.compile(r"[1-9][0-9]{0,9}")


class Approval(BaseModel):
    """The version approved, by whom and when."""

    plan_id: str
    version: int
    approved_by: str
    approved_at: datetime


def add_approval_route(app: FastAPI, *, pool: Callable[[], DbPool]) -> None:
    """The route on ``app``; ``pool`` gives the pool the app opened at start-up."""

    @app.post(
        "/v1/plans/{plan_id}/versions/{version}/approval",
        response_model=None,
        responses={
            200: {"model": Approval, "description": "Approved: the version may launch."},
            403: {
                "model": Refusal,
                "description": "No API key is configured (the open API cannot approve), "
                "or the key published this version.",
            },
            404: {"model": Refusal, "description": "No such plan version."},
            409: {"model": Refusal, "description": "Approved already."},
        },
    )
    async def approve(plan_id: str, version: str, request: Request) -> Response:
        """Approve ``version`` of ``plan_id`` as the request's API key (scope ``admin``)."""
        actor = caller(request.scope)
        if actor == OPEN_CALLER:
            reason = "approving needs an API key (`journeys keys create`): none is configured"
            return refused([(-1, "api key", reason)], status=403)
        number = _version(version)
        if number is None:
            return refused([(-1, "version", f"no version {version!r}")], status=404)
        try:
            info = await plan_store.approve(pool(), plan_id, number, by=actor)
        except NotFound as exc:
            return refused([(-1, "version", str(exc))], status=404)
        except AlreadyApproved as exc:
            return refused([(-1, "version", str(exc))], status=409)
        except NotApproved as exc:
            return refused([(-1, "api key", str(exc))], status=403)
        assert info.approved_by is not None and info.approved_at is not None
        body = Approval(plan_id=plan_id, version=number, approved_by=info.approved_by,
                        approved_at=info.approved_at)  # fmt: skip
        return JSONResponse(body.model_dump(mode="json"))


def _version(text: str) -> int | None:
    """A version number as the path gives it, or None when it cannot name one."""
    if not _VERSION.fullmatch(text) or int(text) > MAX_VERSION:
        return None
    return int(text)
