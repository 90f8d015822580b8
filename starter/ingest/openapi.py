"""The ingest API's OpenAPI document: the request body as the server checks it, the answers.

The handler reads its body itself (so a refusal names the event, field and reason in one
format, and NaN, NUL or deep nesting never reach the model), so FastAPI cannot derive the
request schema; it is written here from the same constants the checks use. Every rule a
JSON Schema can state is stated exactly, so a client generated from the document, or a
fuzzer, sends what the server takes. What it cannot state is in the descriptions or follows
from JSON itself: the ``props`` size in bytes, lone surrogates, numbers too large for a
double (``1e400``) or longer than 4,300 digits.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from journeys.event_checks import ID_PATTERN, TEXT_PATTERN, TS_PATTERN
from journeys.events import API_ENTRY_PREFIX, MAX_BATCH, MAX_USER_ID, EventProblem
from journeys.rules import NAME_PATTERN
from journeys.triggers import MAX_REQUEST_ID

JsonSchema = dict[str, object]


class Refusal(BaseModel):
    """Why a request was refused (nothing of it was stored): one entry per problem; index
    -1 is the request itself."""

    errors: list[EventProblem]


class Health(BaseModel):
    """Whether each service answers."""

    postgres: bool
    redis: bool
    temporal: bool


def _ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def request_schemas(*, max_props_depth: int, max_props_bytes: int) -> dict[str, JsonSchema]:
    """Components for ``POST /v1/events``'s body; ``EventsRequest`` is the body itself."""
    text: JsonSchema = {"type": "string", "pattern": TEXT_PATTERN}
    scalar: list[JsonSchema] = [text, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]
    schemas: dict[str, JsonSchema] = {}
    # One component per level, so the depth limit is part of the schema (values at the
    # last level cannot be containers); props itself is level 1.
    for depth in range(max_props_depth + 1, 1, -1):
        options = list(scalar)
        if depth <= max_props_depth:
            inner = _ref(f"PropValue{depth + 1}")
            options += [
                {"type": "array", "items": inner},
                {"type": "object", "propertyNames": text, "additionalProperties": inner},
            ]
        schemas[f"PropValue{depth}"] = {"anyOf": options}
    ident = {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID, "pattern": ID_PATTERN}
    schemas["Event"] = {
        "type": "object",
        "description": "One thing a user did.",
        "required": ["user_id", "name"],
        "additionalProperties": False,
        "properties": {
            "user_id": ident,
            "name": {
                "type": "string",
                "pattern": f"^(?!{API_ENTRY_PREFIX}){NAME_PATTERN}$",
                "description": f"Names starting with `{API_ENTRY_PREFIX}` are reserved for "
                "API entries.",
            },
            "ts": {
                "anyOf": [{"type": "string", "pattern": TS_PATTERN}, {"type": "null"}],
                "description": "When it happened, with an offset; the receiver's clock if "
                "left out.",
            },
            "props": {
                "type": "object",
                "propertyNames": text,
                "additionalProperties": _ref("PropValue2"),
                "description": f"At most {max_props_bytes} bytes as compact JSON, nested at "
                f"most {max_props_depth} deep.",
            },
            "event_id": {
                "anyOf": [{**ident, "maxLength": 200}, {"type": "null"}],
                "description": "The sender's id: an event with an id seen before is dropped.",
            },
        },
    }
    schemas["EventsRequest"] = {
        "type": "object",
        "required": ["events"],
        "additionalProperties": False,
        "properties": {"events": {"type": "array", "maxItems": MAX_BATCH, "items": _ref("Event")}},
    }
    schemas["Entry"] = {
        "type": "object",
        "description": "One user to enter, with the context the plan reads as `entry.*`.",
        "required": ["user_id"],
        "additionalProperties": False,
        "properties": {
            "user_id": ident,
            "context": {
                "type": "object",
                "propertyNames": text,
                "additionalProperties": _ref("PropValue2"),
                "description": f"At most {max_props_bytes} bytes as compact JSON, nested at "
                f"most {max_props_depth} deep.",
            },
        },
    }
    schemas["EntriesRequest"] = {
        "type": "object",
        "required": ["request_id", "entries"],
        "additionalProperties": False,
        "properties": {
            "request_id": {
                **ident,
                "maxLength": MAX_REQUEST_ID,
                "description": "The caller's id: a request sent again enters no one twice.",
            },
            "entries": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": _ref("Entry"),
            },
        },
    }
    return schemas


def install_openapi(app: FastAPI, *, max_props_depth: int, max_props_bytes: int) -> None:
    """Make ``app.openapi()`` describe the events body (the route refers to
    ``EventsRequest``)."""

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = document.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            schemas.update(
                request_schemas(max_props_depth=max_props_depth, max_props_bytes=max_props_bytes)
            )
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


EVENTS_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _ref("EventsRequest")}},
    }
}
"""``openapi_extra`` of the events route."""

ENTRIES_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _ref("EntriesRequest")}},
    }
}
"""``openapi_extra`` of the entries route."""
