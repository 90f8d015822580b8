"""One settings object reads the environment; nothing else does."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from journeys.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[1]


def test_reads_every_documented_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "TEMPORAL_ADDRESS": "temporal.internal:7233",
        "TEMPORAL_NAMESPACE": "ops",
        "TEMPORAL_TASK_QUEUE": "journeys-eu",
        "REDIS_URL": "redis://cache:6380/2",
        "DATABASE_URL": "postgresql://app@db:5433/journeys",
        "JOURNEYS_CHANNELS": "/etc/journeys/channels.yaml",
        "JOURNEYS_SERVICE_START_TIMEOUT": "90s",
        "JOURNEYS_EVENT_PROPS_MAX_BYTES": "4096",
        "JOURNEYS_INGEST_LINGER": "250ms",
        "JOURNEYS_EVENT_PROPS_MAX_DEPTH": "4",
        "JOURNEYS_INGEST_MAX_BODY_BYTES": "1048576",
        "JOURNEYS_TEMPLATE_MAX_CHARS": "4096",
        "JOURNEYS_TEMPLATE_TIME_LIMIT": "50ms",
        "JOURNEYS_TEMPLATE_MAX_STEPS": "500",
        "JOURNEYS_TEMPLATE_MAX_MEMORY": "134217728",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert s.temporal_address == "temporal.internal:7233"
    assert s.temporal_namespace == "ops"
    assert s.temporal_task_queue == "journeys-eu"
    assert s.redis_url == "redis://cache:6380/2"
    assert s.database_url == "postgresql://app@db:5433/journeys"
    assert s.channels_file == Path("/etc/journeys/channels.yaml")
    assert s.service_start_timeout == timedelta(seconds=90)
    assert s.event_props_max_bytes == 4096
    assert s.ingest_linger == timedelta(milliseconds=250)
    assert s.event_props_max_depth == 4 and s.ingest_max_body_bytes == 1024 * 1024
    limits = s.template_limits()  # what the worker and validate render within
    assert (limits.max_chars, limits.max_steps, limits.max_memory) == (4096, 500, 128 * 1024**2)
    assert limits.time_limit == timedelta(milliseconds=50)


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEMPORAL_ADDRESS", "REDIS_URL", "DATABASE_URL", "JOURNEYS_CHANNELS"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.temporal_address == "localhost:7233"
    assert s.redis_url.startswith("redis://localhost:6379")
    assert s.database_url.endswith("@localhost:5432/journeys")
    assert s.channels_file == Path("channels.yaml")


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_DB_POOL_SIZE", "zero")
    with pytest.raises(ValidationError, match="JOURNEYS_DB_POOL_SIZE"):
        Settings()


def test_event_props_limit_stays_below_what_a_signal_carries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOURNEYS_EVENT_PROPS_MAX_BYTES", str(10 * 1024 * 1024))
    with pytest.raises(ValidationError, match="JOURNEYS_EVENT_PROPS_MAX_BYTES"):
        Settings()


def test_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "first")
    first = get_settings()
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "second")
    assert get_settings() is first
    assert get_settings().temporal_namespace == "first"
    get_settings.cache_clear()


def test_settings_are_immutable() -> None:
    with pytest.raises(ValidationError):
        Settings().temporal_address = "elsewhere:7233"  # type: ignore[misc]


def test_nothing_else_reads_the_environment() -> None:
    reads_env = re.compile(r"os\.environ|os\.getenv|getenv\(")
    offenders = []
    for folder in ("journeys", "workflows", "activities", "starter"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "settings.py":
                continue
            if reads_env.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    if reads_env.search((ROOT / "worker.py").read_text()):
        offenders.append("worker.py")
    assert offenders == []
