"""Read a request body as JSON within a size limit, and answer refusals in one format."""

from __future__ import annotations

import json
from typing import TypeVar

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from journeys.events import MAX_PROBLEMS


class BodyRefused(Exception):
    """The body cannot be taken: ``status`` is 413 (too large) or 422 (not JSON)."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


async def read_json(request: Request, *, max_bytes: int) -> object:
    """The parsed body; raises :class:`BodyRefused`.

    Stops reading at ``max_bytes`` (a declared length over it is refused before any byte is
    read), so an oversized body costs the server at most ``max_bytes`` of memory."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise BodyRefused(413, f"body of {declared} bytes, at most {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyRefused(413, f"body over {max_bytes} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except RecursionError:
        raise BodyRefused(422, "not JSON: nested too deeply to parse") from None
    except ValueError as exc:  # UnicodeDecodeError and over-long integers included
        raise BodyRefused(422, f"not JSON: {exc}"[:200]) from None


Model = TypeVar("Model", bound=BaseModel)


async def read_model(request: Request, model: type[Model], *, max_bytes: int) -> Model | Response:
    """The body as a ``model``, or the 413 / 422 answer refusing it (each problem named)."""
    try:
        body = await read_json(request, max_bytes=max_bytes)
    except BodyRefused as exc:
        return refused([(-1, "body", exc.reason)], status=exc.status)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        return refused(
            [(-1, ".".join(map(str, e["loc"])) or "body", e["msg"]) for e in exc.errors()]
        )


def refused(problems: list[tuple[int, str, str]], *, status: int = 422) -> Response:
    """The refusal every endpoint answers: one entry per problem (index -1: the request)."""
    # ASCII JSON: a field name quoting the sender's lone surrogate must not fail the answer
    errors = [{"index": i, "field": f, "reason": r} for i, f, r in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        more = f"{len(problems) - MAX_PROBLEMS} more problems not listed"
        errors.append({"index": -1, "field": "events", "reason": more})
    body = json.dumps({"errors": errors}, ensure_ascii=True)
    return Response(body, status_code=status, media_type="application/json")
