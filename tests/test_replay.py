"""Recorded histories must replay against today's workflow code (determinism guard)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.plan_run import PlanRunWorkflow
from workflows.shard import ShardWorkflow

HISTORIES = sorted((Path(__file__).parent / "replay").glob("*.json"))


def test_there_are_recorded_histories() -> None:
    names = {p.stem for p in HISTORIES}
    assert "plan_run_v1" in names
    assert len([n for n in names if n.startswith("shard_v1_run")]) >= 2  # a continue-as-new
    # a journey: split, send, wait for an event, goal and exit events, continue-as-new
    assert "journey_v1_run" in names
    assert len([n for n in names if n.startswith("journey_v1_shard_run")]) >= 2
    # v2: after the last-pass-in-result patch (a shard's last pass reaches the run in its result)
    assert {"plan_run_v2", "shard_v2_run0", "journey_v2_run", "journey_v2_shard_run0"} <= names
    # v3: after the report-after-arming patch and the interpreter's move to one handler per kind
    assert {"plan_run_v3", "shard_v3_run0", "journey_v3_run", "journey_v3_shard_run0"} <= names
    # v4: after the quiet-handover patch (hold the signals, continue as new, reopen them)
    assert {"plan_run_v4", "shard_v4_run1", "journey_v4_run", "journey_v4_shard_run1"} <= names
    # v5: entries by event, after the drop-dead-cohort-keys patch
    assert {"entries_v5_run", "entries_v5_shard_run0", "entries_v5_shard_run1"} <= names
    # v6: a route to nowhere, after the drop-completed-cohort-keys patch
    assert {"entries_v6_run", "entries_v6_shard_run0", "entries_v6_shard_run1"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    recorded = json.loads(await asyncio.to_thread(path.read_text))
    history = WorkflowHistory.from_json(recorded["workflow_id"], recorded["history"])
    replayer = Replayer(
        workflows=[PlanRunWorkflow, ShardWorkflow], data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
