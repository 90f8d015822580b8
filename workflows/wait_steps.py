"""``wait`` and ``wait_until`` nodes: one durable timer per cohort.

The deadline is stored in the cohort (``wake_at``) when the timer is armed, so after a
continue-as-new the timer resumes with exactly the time it had left. ``wait_until`` in users'
own zones first splits the cohort by zone (a routing pass), then each zone's cohort waits for
its own local time.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.shard import Cohort
    from journeys.plan.steps import WaitStep, WaitUntilStep
    from journeys.schedule import next_local_time

from workflows.route_step import RouteHandler


class WaitHandler(RouteHandler):
    """Handles ``wait`` and ``wait_until`` steps for the shard interpreter."""

    async def _wait(self, cohort: Cohort, step: WaitStep) -> bool:
        if cohort.wake_at is None:
            cohort.wake_at = workflow.now() + step.duration
        return await self._hold(cohort, step.next, summary=f"wait {cohort.node}")

    async def _wait_until(self, cohort: Cohort, step: WaitUntilStep) -> bool:
        if step.timezone == "user" and cohort.zone is None:
            return await self._route(cohort, step)  # one cohort per zone, back at this node
        if cohort.wake_at is None:
            cohort.wake_at = self._moment(step, cohort.zone)
        zone = f" ({cohort.zone})" if cohort.zone else ""
        return await self._hold(cohort, step.next, summary=f"wait_until {cohort.node}{zone}")

    def _moment(self, step: WaitUntilStep, zone: str | None) -> datetime:
        now = workflow.now()
        if step.at is not None:
            return max(step.at, now)
        assert step.time is not None  # the model requires at or time
        if zone is None:
            zone = self.s.plan.timezone if step.timezone == "plan" else step.timezone
        return next_local_time(now, at=step.time, zone=zone, weekdays=step.weekdays)

    async def _hold(self, cohort: Cohort, next_node: str | None, *, summary: str) -> bool:
        """Sleep until the cohort's deadline, then move it on with the same key."""
        assert cohort.wake_at is not None
        workflow.set_current_details(
            f"{self._where()} · {cohort.size} users at {cohort.node} until "
            f"{cohort.wake_at:%Y-%m-%d %H:%M} UTC"
        )
        if not await self._sleep_until(cohort.wake_at, summary=f"{summary} · {cohort.size} users"):
            return False
        if cohort.zone is None:  # zone cohorts were counted when the node split them
            self._node(cohort.node).entered += cohort.size
        self._forward(cohort_id=cohort.id, node=next_node, key=cohort.key, size=cohort.size)
        return True
