"""A workflow that breaks the sandbox's rules on purpose, for tests/test_sandbox_guard.py."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="LazyImportCanary")
class LazyImportCanary:
    """Imports a module at run time, as a workflow must not."""

    @workflow.run
    async def run(self) -> str:
        import mmh3  # noqa: F401  (the point of the canary)

        return "imported"
