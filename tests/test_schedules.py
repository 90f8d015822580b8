"""A plan's schedule entry as a Temporal Schedule (the builder; launching comes next)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy

from journeys.contracts.runs import PlanRunInput
from journeys.plan.entry import ScheduleEntry
from journeys.plan.models import Plan
from starter.plan_files import read_plan
from starter.schedules import plan_schedule, schedule_id
from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"


def test_the_member_day_calendar_becomes_its_schedule() -> None:
    plan = read_plan(EXAMPLES / "member-day.yaml", channels=None)
    schedule = plan_schedule(plan, version=3, task_queue="journeys", policy=None)
    entry = plan.entry
    assert isinstance(entry, ScheduleEntry) and entry.cron is not None
    assert schedule.spec.cron_expressions == [entry.cron]
    assert schedule.spec.time_zone_name == (entry.timezone or plan.timezone)
    assert schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
    assert schedule.policy.catchup_window == timedelta(hours=1)
    action = schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.id == f"plan/{plan.id}/v3/sched"
    (arg,) = action.args
    assert isinstance(arg, PlanRunInput)
    assert (arg.plan_id, arg.version, arg.delivery_controls) == (plan.id, 3, True)
    assert schedule_id(plan.id) == f"plan/{plan.id}"


def test_every_and_the_policy_fields_map_across() -> None:
    body = yaml.safe_load((EXAMPLES / "weekly-digest.yaml").read_text())
    entry = {
        "type": "schedule",
        "every": "6h",
        "start": "2026-12-01T00:00:00+08:00",
        "end": "2026-12-31T00:00:00+08:00",
        "overlap": "buffer_one",
        "catchup_window": "10m",
    }
    plan = Plan.model_validate(body | {"entry": entry})
    schedule = plan_schedule(plan, version=1, task_queue="q", policy=None)
    assert [i.every for i in schedule.spec.intervals] == [timedelta(hours=6)]
    assert schedule.spec.cron_expressions == []
    assert schedule.spec.start_at is not None and schedule.spec.start_at.isoformat().startswith(
        "2026-12-01T00:00:00"
    )
    assert schedule.policy.overlap is ScheduleOverlapPolicy.BUFFER_ONE
    assert schedule.policy.catchup_window == timedelta(minutes=10)


def test_a_plan_without_a_schedule_entry_is_refused() -> None:
    plan = read_plan(EXAMPLES / "welcome-blast.yaml", channels=None)
    with pytest.raises(ValueError, match="not a schedule"):
        plan_schedule(plan, version=1, task_queue="q", policy=None)
