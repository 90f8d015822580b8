"""Workflows that meet the sandbox's rules in the two ways the suite guards against, for
tests/test_sandbox_guard.py."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import tests.sandbox_objects as sandbox_objects


@workflow.defn(name="LazyImportCanary")
class LazyImportCanary:
    """Imports a module at run time, as a workflow must not."""

    @workflow.run
    async def run(self) -> str:
        import mmh3  # noqa: F401  (the point of the canary)

        return "imported"


@workflow.defn(name="FinalizerCanary")
class FinalizerCanary:
    """Drops the last reference to objects made outside, so their finalizers run inside an
    activation, as a garbage collection in the workflow thread would run them."""

    @workflow.run
    async def run(self) -> int:
        return sandbox_objects.let_go()
