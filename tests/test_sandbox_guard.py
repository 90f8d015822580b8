"""The suite's guard on the workflow sandbox holds, and its one known leak is closed.

A workflow that imports a module lazily fails at once under the tests' worker settings,
instead of warning (or retrying its task forever). And objects made outside the sandbox whose
finalizers run inside an activation (a garbage collection in the workflow thread) import
nothing into the sandbox: redis's connection pool did, once per workflow, until the worker
passed the I/O libraries through (``worker.workflow_runner``)."""

from __future__ import annotations

import uuid
import warnings

import pytest
import redis.asyncio as aioredis
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from journeys.settings import Settings
from tests import sandbox_objects
from tests.engine import STRICT, client_for
from tests.sandbox_canary import FinalizerCanary, LazyImportCanary
from worker import workflow_runner

LAZY = "was imported after initial workflow load"


async def test_a_lazy_import_in_workflow_code_fails_the_workflow(stack_settings: Settings) -> None:
    client = await client_for(stack_settings)
    queue = f"canary-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[LazyImportCanary],
        workflow_failure_exception_types=list(STRICT),
        workflow_runner=workflow_runner(),
    ):
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow(
                LazyImportCanary.run, id=f"canary-{uuid.uuid4().hex[:8]}", task_queue=queue
            )
    assert LAZY in str(failed.value.cause)


async def drop_a_redis_pool_inside(
    client: Client, settings: Settings, runner: SandboxedWorkflowRunner
) -> int:
    """Let go of a used redis pool inside a workflow activation, as a GC there would."""
    used = aioredis.Redis.from_url(settings.redis_url)
    await used.ping()  # one idle connection: the pool's finalizer records it
    sandbox_objects.DROP.append(used.connection_pool)
    del used
    queue = f"canary-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[FinalizerCanary], workflow_runner=runner
    ):
        dropped: int = await client.execute_workflow(
            FinalizerCanary.run, id=f"canary-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
    return dropped


async def test_finalizers_run_inside_a_workflow_import_nothing_into_it(
    stack_settings: Settings,
) -> None:
    client = await client_for(stack_settings)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert await drop_a_redis_pool_inside(client, stack_settings, workflow_runner()) == 1
    assert [str(w.message) for w in seen if LAZY in str(w.message)] == []

    # the same with the sandbox's defaults: the leak the worker's runner closes (redis, and
    # what redis pulls in: hiredis, opentelemetry, whose os.environ read the sandbox refuses
    # with "get on os.environ restricted")
    with pytest.warns(UserWarning, match=LAZY) as leaked:
        await drop_a_redis_pool_inside(client, stack_settings, SandboxedWorkflowRunner())
    assert f"Module redis.observability.recorder {LAZY}." in [str(w.message) for w in leaked]
