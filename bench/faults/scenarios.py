"""The faults, one coroutine each: when it strikes (a share of the audience the provider has
accepted, drawn per trial) and what it breaks. Each returns what it did, for the record."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from .load import Fault, Rig

PROVIDER_DOWN = timedelta(seconds=60)
FAIL_RATIO = 0.3


@dataclass(frozen=True)
class Scenario:
    """A named fault; ``trials`` by default in the full harness."""

    name: str
    make: Callable[[random.Random, timedelta], Fault]
    trials: int = 1
    append_only: bool = True
    """Redis's append-only file on for this scenario's stack."""


def _moment(rng: random.Random, rig: Rig) -> int:
    """A random point of the blast: 5-80% of its messages accepted."""
    return max(1, round(rig.users * rng.uniform(0.05, 0.8)))


def process_kill(which: str) -> Callable[..., Fault]:
    """SIGKILL the rig's ``worker`` or ``api`` process; it starts again at once."""

    def make(rng: random.Random, down: timedelta) -> Fault:
        async def fault(rig: Rig) -> str:
            at = _moment(rng, rig)
            await rig.accepted(at)
            await (rig.worker if which == "worker" else rig.api).kill()
            return f"{which} kill -9 at {at:,} accepted"

        return fault

    return make


def service_restart(name: str, *, kill: bool, wipe: bool = False) -> Callable[..., Fault]:
    def make(rng: random.Random, down: timedelta) -> Fault:
        async def fault(rig: Rig) -> str:
            at = _moment(rng, rig)
            await rig.accepted(at)
            await rig.stack.restart(name, kill=kill, wipe=wipe)
            how = "kill -9" if kill else "stop"
            return f"{name} {how}{' and wipe' if wipe else ''}, restart at {at:,} accepted"

        return fault

    return make


def provider_faults(rng: random.Random, down: timedelta) -> Fault:
    async def fault(rig: Rig) -> str:
        rig.receiver.fail_ratio = FAIL_RATIO
        at = _moment(rng, rig)
        try:
            await rig.accepted(at)
            rig.receiver.down()
            await asyncio.sleep(down.total_seconds())  # the outage itself: a fixed length
            rig.receiver.up()
        finally:
            rig.receiver.fail_ratio = 0.0
        return f"provider {FAIL_RATIO:.0%} failures, down {down} at {at:,} accepted"

    return fault


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("worker_kill", process_kill("worker"), trials=10),
        Scenario("redis_aof", service_restart("redis", kill=True)),
        Scenario("redis_no_aof", service_restart("redis", kill=True, wipe=True), append_only=False),
        Scenario("postgres", service_restart("postgres", kill=False)),
        Scenario("temporal", service_restart("temporal", kill=False)),
        Scenario("provider", provider_faults),
        Scenario("ingest_kill", process_kill("api")),
    )
}
