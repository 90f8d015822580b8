"""The one place that reads the environment.

Every process (CLI, worker, ingest API, tests) builds a :class:`Settings` once and passes it
down; no other module looks at ``os.environ``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from journeys.durations import Duration
from journeys.event_checks import MAX_PROPS_DEPTH, PROPS_DEPTH_CEILING
from journeys.events import (
    BODY_BYTES_CEILING,
    MAX_BODY_BYTES,
    MAX_PROPS_BYTES,
    PROPS_BYTES_CEILING,
)
from journeys.template_sandbox import TemplateLimits


class Settings(BaseSettings):
    """Connection and tuning settings, read from environment variables of the same name."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    temporal_address: str = Field(default="localhost:7233", alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    temporal_task_queue: str = Field(default="journeys", alias="TEMPORAL_TASK_QUEUE")
    temporal_ui_url: str = Field(default="http://localhost:8233", alias="TEMPORAL_UI_URL")
    redis_url: str = Field(default="redis://localhost:6379/0", alias="REDIS_URL")
    database_url: str = Field(
        default="postgresql://postgres@localhost:5432/journeys", alias="DATABASE_URL"
    )
    channels_file: Path = Field(default=Path("channels.yaml"), alias="JOURNEYS_CHANNELS")
    policy_file: Path | None = Field(default=None, alias="JOURNEYS_POLICY")
    """The workspace policy (caps, quiet hours, quotas...); none: no workspace controls."""
    home: Path = Field(default=Path(".journeys"), alias="JOURNEYS_HOME")
    actor: str | None = Field(default=None, alias="JOURNEYS_ACTOR")
    """Who the CLI acts as in the audit log and approvals (``--by`` overrides it; unset: the
    login name)."""
    ingest_host: str = Field(default="127.0.0.1", alias="JOURNEYS_INGEST_HOST")
    ingest_port: int = Field(default=8088, alias="JOURNEYS_INGEST_PORT")
    event_props_max_bytes: int = Field(
        default=MAX_PROPS_BYTES,
        ge=256,
        le=PROPS_BYTES_CEILING,
        alias="JOURNEYS_EVENT_PROPS_MAX_BYTES",
    )
    """The largest ``props`` of an accepted event, as compact JSON."""
    event_props_max_depth: int = Field(
        default=MAX_PROPS_DEPTH,
        ge=1,
        le=PROPS_DEPTH_CEILING,
        alias="JOURNEYS_EVENT_PROPS_MAX_DEPTH",
    )
    """The deepest nesting of an accepted event's ``props``."""
    ingest_max_body_bytes: int = Field(
        default=MAX_BODY_BYTES,
        ge=64 * 1024,
        le=BODY_BYTES_CEILING,
        alias="JOURNEYS_INGEST_MAX_BODY_BYTES",
    )
    """The largest request body the ingest API reads; a bigger one gets 413."""
    ingest_linger: Duration = Field(
        default=timedelta(milliseconds=100), alias="JOURNEYS_INGEST_LINGER"
    )
    """How long the ingest API gathers events for one shard into one signal."""
    template_max_chars: int = Field(
        default=TemplateLimits.max_chars,
        ge=1024,
        le=16 * 1024 * 1024,
        alias="JOURNEYS_TEMPLATE_MAX_CHARS",
    )
    """The longest rendered template field; also bounds every value a template builds."""
    template_time_limit: Duration = Field(
        default=TemplateLimits.time_limit, alias="JOURNEYS_TEMPLATE_TIME_LIMIT"
    )
    """How long one field of one message may take to render."""
    template_max_steps: int = Field(
        default=TemplateLimits.max_steps, ge=100, alias="JOURNEYS_TEMPLATE_MAX_STEPS"
    )
    """Loop iterations, calls and filters one render may take."""
    template_max_memory: int = Field(
        default=TemplateLimits.max_memory,
        ge=64 * 1024 * 1024,
        alias="JOURNEYS_TEMPLATE_MAX_MEMORY",
    )
    """Bytes a render child process may allocate beyond its start (templates that run Jinja
    code render there)."""
    log_level: str = Field(default="INFO", alias="JOURNEYS_LOG_LEVEL")
    db_pool_size: int = Field(default=10, ge=1, alias="JOURNEYS_DB_POOL_SIZE")
    worker_max_activities: int = Field(default=64, ge=1, alias="JOURNEYS_WORKER_MAX_ACTIVITIES")
    debug: bool = Field(default=False, alias="JOURNEYS_DEBUG")
    demo_exit: bool = Field(default=False, alias="DEMO_EXIT")
    service_start_timeout: Duration = Field(
        default=timedelta(seconds=60), alias="JOURNEYS_SERVICE_START_TIMEOUT"
    )

    def template_limits(self) -> TemplateLimits:
        """The bounds every template renders within (workers and ``validate`` alike)."""
        return TemplateLimits(
            max_chars=self.template_max_chars,
            time_limit=self.template_time_limit,
            max_steps=self.template_max_steps,
            max_memory=self.template_max_memory,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the environment once per process."""
    return Settings()
