"""Typed settings, read from ``PUBSUB_JOBS_*`` environment variables on first use.

Nothing reads the environment at import time: :func:`get_settings` builds the settings the
first time something needs them, and :func:`configure` replaces them from code (values given
there win over the environment).
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pubsub_jobs.errors import ConfigurationError

#: Project used against the emulator when none is configured; the emulator accepts any.
EMULATOR_PROJECT = "local-project"


class QueueOptions(BaseModel):
    """How one queue's subscriptions are set up; the same values feed bootstrap and Terraform."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_delivery_attempts: int = Field(5, ge=5, le=100)
    min_retry_backoff: timedelta = timedelta(seconds=10)
    max_retry_backoff: timedelta = timedelta(seconds=600)
    ack_deadline_seconds: int = Field(60, ge=10, le=600)
    message_retention: timedelta = timedelta(days=7)
    dead_letter_retention: timedelta = timedelta(days=7)

    @field_validator("min_retry_backoff", "max_retry_backoff")
    @classmethod
    def _backoff_range(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value <= timedelta(seconds=600):
            raise ValueError("a retry backoff is between 0 and 600 seconds (Pub/Sub's limits)")
        return value

    @field_validator("message_retention", "dead_letter_retention")
    @classmethod
    def _retention_range(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=10) <= value <= timedelta(days=7):
            raise ValueError("a subscription keeps messages between 10 minutes and 7 days")
        return value


class Settings(BaseSettings):
    """Everything pubsub-jobs can be told. Environment names are ``PUBSUB_JOBS_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="PUBSUB_JOBS_",
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    project_id: str | None = Field(
        None,
        validation_alias=AliasChoices("PUBSUB_JOBS_PROJECT_ID", "GOOGLE_CLOUD_PROJECT"),
        description="Google Cloud project; falls back to GOOGLE_CLOUD_PROJECT.",
    )
    prefix: str = Field("jobs-", description="Prefix of every topic and subscription name.")
    cloud_tasks_location: str | None = Field(
        None, description="Cloud Tasks location for delayed jobs, e.g. us-central1."
    )
    cloud_tasks_queue: str = Field("jobs-delayed", description="Cloud Tasks queue.")
    cloud_tasks_service_account: str | None = Field(
        None, description="Service account whose OAuth token publishes due jobs."
    )
    pubsub_emulator_host: str | None = Field(
        None,
        validation_alias=AliasChoices("PUBSUB_EMULATOR_HOST"),
        description="Google's own variable: talk to the Pub/Sub emulator at this host:port.",
    )
    cloud_tasks_emulator_host: str | None = Field(
        None,
        validation_alias=AliasChoices("CLOUD_TASKS_EMULATOR_HOST"),
        description="Talk to a Cloud Tasks emulator at this host:port (insecure channel).",
    )
    publish_timeout: float = Field(
        60.0, gt=0, description="Seconds an enqueue waits for Pub/Sub to confirm."
    )
    publish_attempts: int = Field(
        5, ge=1, description="Tries of a publish that meets transient errors."
    )
    queue_defaults: QueueOptions = Field(default_factory=QueueOptions)
    queues: dict[str, QueueOptions] = Field(
        default_factory=dict, description="Per-queue overrides of queue_defaults, by name."
    )

    middleware: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Middleware import paths ('myapp.middleware:AuditLog', or logging, "
        "prometheus, opentelemetry), as a JSON list or comma-separated.",
    )

    @field_validator("middleware", mode="before")
    @classmethod
    def _split_middleware(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    def queue_options(self, queue: str) -> QueueOptions:
        """The options of ``queue``: its own entry, else the defaults."""
        return self.queues.get(queue, self.queue_defaults)

    def require_project(self) -> str:
        """The project id, or the emulator's stand-in; a clear error when neither is set."""
        if self.project_id:
            return self.project_id
        if self.pubsub_emulator_host:
            return EMULATOR_PROJECT
        raise ConfigurationError(
            "no Google Cloud project configured: set PUBSUB_JOBS_PROJECT_ID (or "
            "GOOGLE_CLOUD_PROJECT), or call pubsub_jobs.configure(project_id=...)"
        )

    def topic(self, queue: str) -> str:
        """Topic id of a queue."""
        return f"{self.prefix}{queue}"

    def subscription(self, queue: str) -> str:
        """Worker subscription id of a queue."""
        return f"{self.prefix}{queue}-worker"

    def dead_letter_topic(self, queue: str) -> str:
        """Dead-letter topic id of a queue (its subscription has the same id)."""
        return f"{self.prefix}{queue}-dead-letter"

    def topic_path(self, queue: str) -> str:
        return f"projects/{self.require_project()}/topics/{self.topic(queue)}"

    def subscription_path(self, queue: str) -> str:
        return f"projects/{self.require_project()}/subscriptions/{self.subscription(queue)}"

    def dead_letter_topic_path(self, queue: str) -> str:
        return f"projects/{self.require_project()}/topics/{self.dead_letter_topic(queue)}"

    def dead_letter_subscription_path(self, queue: str) -> str:
        return (
            f"projects/{self.require_project()}/subscriptions/{self.dead_letter_topic(queue)}"
        )


_lock = threading.Lock()
_settings: Settings | None = None


def get_settings() -> Settings:
    """The current settings, read from the environment the first time they are needed."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings()
        return _settings


def configure(**overrides: Any) -> Settings:
    """Set settings from code; what is not given comes from the environment.

    >>> configure(project_id="my-project", prefix="jobs-")  # doctest: +SKIP

    Adapters and clients created before the call keep their settings; the default adapter is
    rebuilt on next use.
    """
    global _settings
    try:
        new = Settings(**overrides)
    except ValueError as exc:
        raise ConfigurationError(f"invalid pubsub-jobs settings: {exc}") from exc
    with _lock:
        _settings = new
    from pubsub_jobs.adapters import _reset_default_adapter

    _reset_default_adapter()
    return new


def reset() -> None:
    """Forget configured settings so the environment is read again (for tests)."""
    global _settings
    with _lock:
        _settings = None
    from pubsub_jobs.adapters import _reset_default_adapter

    _reset_default_adapter()
