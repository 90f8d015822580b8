"""Worker processes beside the bench's own worker, for the scale-out scenario."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from journeys.settings import Settings
from tests.engine import ROOT, settings_env


@asynccontextmanager
async def worker_processes(settings: Settings, count: int) -> AsyncIterator[None]:
    """``count`` more ``python worker.py`` processes on ``settings``' task queue, polling
    before the block starts and stopped after it."""
    env = settings_env(settings, channels=settings.channels_file) | {"JOURNEYS_LOG_LEVEL": "INFO"}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "worker.py"), env=env, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(count)
    ]
    try:
        async with asyncio.timeout(60):
            for process in processes:
                await _polling(process)
        yield
    finally:
        for process in processes:
            process.terminate()
            await process.wait()


async def _polling(process: asyncio.subprocess.Process) -> None:
    """Read the worker's log until it says it polls (then keep draining it)."""
    assert process.stderr is not None
    while line := await process.stderr.readline():
        if b"worker polling" in line:
            asyncio.get_running_loop().create_task(_drain(process.stderr))
            return
    raise RuntimeError(f"worker exited with {await process.wait()} before polling")


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
