"""The suite's guard on the workflow sandbox holds: a workflow that imports a module lazily
fails at once under the tests' worker settings, instead of warning (or retrying its task
forever). Every real workflow therefore runs warning-free in the other tests."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker

from journeys.settings import Settings
from tests.engine import STRICT, client_for
from tests.sandbox_canary import LazyImportCanary


async def test_a_lazy_import_in_workflow_code_fails_the_workflow(stack_settings: Settings) -> None:
    client = await client_for(stack_settings)
    queue = f"canary-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[LazyImportCanary],
        workflow_failure_exception_types=list(STRICT),
    ):
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow(
                LazyImportCanary.run, id=f"canary-{uuid.uuid4().hex[:8]}", task_queue=queue
            )
    assert "was imported after initial workflow load" in str(failed.value.cause)
