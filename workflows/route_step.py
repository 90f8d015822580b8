"""Routing nodes: ``branch``, ``ab_split``, ``update`` and the zone split of a ``wait_until``
in users' own time zones. Pages write each user to one route's sub-cohort; when the cohort is
done, every non-empty route goes on as a cohort of its own."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.pages import RoutePageInput, RoutePageOutput
    from journeys.contracts.shard import Cohort
    from journeys.names import cohort_key
    from journeys.plan.steps import AbSplitStep, BranchStep, UpdateStep, WaitUntilStep

from workflows.send_step import PAGE_RETRY
from workflows.shard_base import ShardBase

RoutedStep = BranchStep | AbSplitStep | UpdateStep | WaitUntilStep


class RouteHandler(ShardBase):
    """Handles the routing nodes for the shard interpreter."""

    async def _route(self, cohort: Cohort, step: RoutedStep) -> bool:
        """Route every page of ``cohort``; False if it stopped early (state kept)."""
        prefix = f"{cohort.id}>{cohort.node}"
        outs = await self._pages(cohort, lambda page: self._route_page(cohort, step, prefix, page))
        if outs is None:
            return False
        counters = self._node(cohort.node)
        counters.entered += cohort.size
        counters.exited += cohort.exited
        self.s.counters.exited += cohort.exited
        for route in sorted(cohort.routes):
            size = cohort.routes[route]
            label, node, control = self._way(step, route)
            counters.routes[label] = counters.routes.get(label, 0) + size
            key = cohort_key(self.s.run_id, self.s.shard, f"{prefix}.{route}")
            if isinstance(step, WaitUntilStep):
                if size:
                    self.s.cohorts.append(
                        Cohort(
                            id=f"{prefix}.{route}", node=cohort.node, key=key, size=size, zone=label
                        )
                    )
                continue
            if control:
                counters.completed += size
            self._forward(cohort_id=f"{prefix}.{route}", node=node, key=key, size=size)
        return True

    async def _route_page(
        self, cohort: Cohort, step: RoutedStep, prefix: str, page: int
    ) -> RoutePageOutput:
        result: RoutePageOutput = await workflow.execute_activity(
            "route_page",
            RoutePageInput(
                run_id=self.s.run_id,
                shard=self.s.shard,
                node=cohort.node,
                step=step,
                cohort_key=cohort.key,
                page=page,
                page_size=self._page_size,
                out_prefix=prefix,
                exited_key=self.page_exit_key,
                exit_rules=[c.rule for c in self.s.plan.exit_criteria if c.rule is not None],
                now=workflow.now(),
                fallback_zone=self.s.plan.timezone,
            ),
            result_type=RoutePageOutput,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=self.s.options.page_heartbeat_timeout,
            retry_policy=PAGE_RETRY,
            summary=f"{self._where()} · {step.type} {cohort.node} · page {page + 1}",
        )
        for route in sorted(result.routes):
            cohort.routes[route] = cohort.routes.get(route, 0) + result.routes[route]
        cohort.exited += result.exited
        await self._report(self._status())
        return result

    @staticmethod
    def _way(step: RoutedStep, route: str) -> tuple[str, str | None, bool]:
        """(label for counters, next node, is the control arm) of ``route``."""
        if isinstance(step, BranchStep):
            if route == "else":
                return "else", step.else_, False
            way = step.branches[int(route.removeprefix("b"))]
            return way.name, way.next, False
        if isinstance(step, AbSplitStep):
            arm = step.arms[int(route.removeprefix("a"))]
            return arm.name, arm.next, arm.control
        if isinstance(step, WaitUntilStep):
            return route.removeprefix("tz:"), None, False
        return route, step.next, False
