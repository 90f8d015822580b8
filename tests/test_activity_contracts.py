"""Workflows and the worker agree on every activity: each contract is registered once by
``worker.build_activities`` with the contract's payload types, and workflow code reaches
activities only through the typed calls of ``workflows.activity_calls``."""

from __future__ import annotations

import ast
import typing
from pathlib import Path
from typing import cast

import redis.asyncio as aioredis
from temporalio import activity

from activities.channels.runtime import ChannelRuntime
from activities.db.pool import DbPool
from journeys.channels_config import load_channels
from journeys.contracts import activities as contracts
from worker import build_activities
from workflows import activity_calls

ROOT = Path(__file__).resolve().parents[1]


def registered() -> dict[str, object]:
    # The classes only keep their pools; nothing here opens a connection.
    hosted = build_activities(
        pool=cast(DbPool, None),
        redis=aioredis.Redis(),  # connects on first use only
        channels=ChannelRuntime(load_channels(ROOT / "examples" / "channels.yaml"), pool=None),
    )
    names: dict[str, object] = {}
    for fn in hosted:
        defn = activity._Definition.must_from_callable(fn)
        assert defn.name not in names, f"{defn.name} registered twice"
        names[str(defn.name)] = fn
    return names


def test_every_contract_is_registered_with_its_payload_types() -> None:
    hosted = registered()
    assert sorted(hosted) == sorted(c.name for c in contracts.ALL)
    for contract in contracts.ALL:
        hints = typing.get_type_hints(hosted[contract.name])
        params = [v for k, v in hints.items() if k != "return"]
        assert params == [contract.input], contract.name
        assert hints["return"] is contract.output, contract.name


def test_every_contract_has_one_typed_call() -> None:
    calls = [c for c in vars(activity_calls).values() if isinstance(c, activity_calls.Call)]
    assert sorted(c.contract.name for c in calls) == sorted(c.name for c in contracts.ALL)


def test_workflow_code_calls_activities_only_through_the_typed_calls() -> None:
    offenders = []
    for path in sorted((ROOT / "workflows").rglob("*.py")):
        if path.name == "activity_calls.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            named = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
            if isinstance(node, ast.Attribute | ast.Name) and "_activity" in named:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {named}")
            if isinstance(node, ast.ImportFrom) and any("_activity" in a.name for a in node.names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} import")
    assert offenders == []
