"""Typed settings, read from ``PUBSUB_JOBS_*`` environment variables on first use.

Nothing reads the environment at import time: :func:`get_settings` builds the settings the
first time something needs them, and :func:`configure` replaces them from code (values given
there win over the environment). An invalid value is a
:class:`~pubsub_jobs.errors.ConfigurationError` that names the environment variable (or the
keyword given to ``configure``) and what it expects, never a pydantic traceback::

    invalid pubsub-jobs setting: PUBSUB_JOBS_PUBLISH_TIMEOUT='abc': Input should be a valid
    number, unable to parse string as a number [Seconds an enqueue waits for Pub/Sub to
    confirm]
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Collection, Iterable
from types import FrameType
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from pubsub_jobs import _settings_errors as _errors
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.queues import QueueOptions as QueueOptions
from pubsub_jobs.queues import call_site, merged_options, option_sources, queue_description

log = logging.getLogger(__name__)

#: Project used against the emulator when none is configured; the emulator accepts any.
EMULATOR_PROJECT = "local-project"


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
    max_decoded_message_mb: int = Field(
        128, ge=1, description="Memory one message may take once decoded (estimated before "
        "decoding); a message over it is dead-lettered as invalid_message."
    )
    queue_defaults: QueueOptions = Field(
        default_factory=QueueOptions,
        description="Subscription options of every queue, as a JSON object.",
    )
    queues: dict[str, QueueOptions] = Field(
        default_factory=dict,
        description="Per-queue overrides of queue_defaults, a JSON object by queue name.",
    )
    log_level: str = Field(
        "INFO",
        description="Log level of the pubsub-jobs command line: DEBUG, INFO, WARNING, "
        "ERROR or CRITICAL; --log-level wins.",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log format of the pubsub-jobs command line: text, or json for one JSON "
        "object per line as Cloud Logging reads them; --log-format wins.",
    )

    push_audience: str | None = Field(
        None, description="Audience the push endpoint expects in Pub/Sub's OIDC tokens "
        "(the push subscription's oidc_token audience, e.g. the service's URL)."
    )
    push_service_account: str | None = Field(
        None, description="Email of the service account whose OIDC tokens the push endpoint "
        "accepts (the push subscription's oidc_token service account)."
    )
    push_certs_url: str = Field(
        "https://www.googleapis.com/oauth2/v1/certs",
        description="Where the push endpoint gets the certificates that verify OIDC tokens.",
    )
    push_auth: Literal["oidc", "none"] = Field(
        "oidc", description="How push requests are authenticated: oidc (Google-signed "
        "tokens), or none, accepted only against the emulator (PUBSUB_EMULATOR_HOST)."
    )

    app: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Modules every pubsub-jobs command imports first, as --app does: your "
        "application's jobs and its configure() call, so that the commands use the same "
        "settings as the application (a JSON list or comma-separated).",
    )
    middleware: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Middleware import paths ('myapp.middleware:AuditLog', or logging, "
        "prometheus, opentelemetry), as a JSON list or comma-separated.",
    )

    @field_validator("middleware", "app", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            name = value.strip().upper()
            if name not in logging.getLevelNamesMapping():
                raise ValueError("a log level is DEBUG, INFO, WARNING, ERROR or CRITICAL")
            return name
        return value

    def queue_options(self, queue: str) -> QueueOptions:
        """The options of ``queue``: what its declaration in code gives
        (:func:`pubsub_jobs.queue`), else its own entry of ``queues``, else
        ``queue_defaults``. A ``queues`` entry that contradicts the declaration is logged
        once as a warning naming both; the declaration wins."""
        return merged_options(queue, self.queues.get(queue), self.queue_defaults,
                              lambda: _given_source("queues"))

    def queue_option_sources(self, queue: str) -> dict[str, str]:
        """Where each option of :meth:`queue_options` comes from: ``queue() at app.py:3``,
        ``PUBSUB_JOBS_QUEUES`` (or the ``configure()`` call that set it), the same for
        ``queue_defaults``, or ``the default``."""
        return option_sources(queue, self.queues.get(queue), self.queue_defaults,
                              _given_source("queues"), _given_source("queue_defaults"))

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

    def rate_queue(self, queue: str) -> str:
        """Cloud Tasks queue id of a ``rate_limit`` queue (``<prefix>Q-rate``): every job of
        the queue goes through it, at most its rate a second."""
        return f"{self.prefix}{queue}-rate"

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

    def workers_topic_path(self) -> str:
        """Topic of the workers' heartbeats (``<prefix>workers``), which dashboards read; so
        ``workers`` is no queue name."""
        return f"projects/{self.require_project()}/topics/{self.prefix}workers"


_lock = threading.Lock()
_settings: Settings | None = None
_on_configure: list[Callable[[], None]] = []
#: Where each setting given to configure() was set: ``configure() at app.py:4``.
_origins: dict[str, str] = {}


def on_configure(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever :func:`configure` or :func:`reset` replaced the settings
    (the default adapter is rebuilt this way)."""
    _on_configure.append(callback)


def _configured() -> None:
    for callback in _on_configure:
        callback()


def get_settings() -> Settings:
    """The current settings, read from the environment the first time they are needed.

    Raises :class:`~pubsub_jobs.errors.ConfigurationError` naming each invalid variable.
    """
    global _settings
    with _lock:
        if _settings is None:
            _settings = load_settings()
        return _settings


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with ``overrides`` over it, without making them current.

    Every invalid value, read or given, raises :class:`~pubsub_jobs.errors.ConfigurationError`
    naming its environment variable or keyword and what it expects.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        fields = Settings.model_fields
        raise ConfigurationError(_errors.explain_invalid(fields, exc, given=overrides)) from None
    except SettingsError as exc:
        raise ConfigurationError(_errors.explain_unparsable(Settings.model_fields, exc)) from None


def configure(*, origin: str | None = None, **overrides: Any) -> Settings:
    """Set settings from code; what is not given comes from the environment.

    >>> configure(project_id="my-project", prefix="jobs-")  # doctest: +SKIP

    Adapters and clients created before the call keep their settings; the default adapter is
    rebuilt on next use. An invalid value raises
    :class:`~pubsub_jobs.errors.ConfigurationError` naming the keyword (or the environment
    variable, for a value read from there).

    Only the processes that run this call see its values: give the module that calls it to
    every command (``pubsub-jobs --app myapp.jobs ...``, or ``PUBSUB_JOBS_APP``). Where each
    value came from is remembered, so an error about a missing topic can say it: ``origin``
    when given (the package's own callers name themselves: "the command line"), else
    ``configure() at FILE:LINE`` of the call; a value of such a call that differs from its
    environment variable is logged as a warning.
    """
    global _settings
    new = load_settings(**overrides)
    if origin is None:
        origin = _call_site(sys._getframe(1))
    with _lock:
        old = _settings
        changed = [field for field in map(_field_of, overrides) if field is not None
                   and (old is None or getattr(old, field) != getattr(new, field))]
        _origins.update(dict.fromkeys(changed, origin))
        _settings = new
    for field in changed if origin.startswith("configure() at") else ():  # the user's call
        _warn_if_env_differs(field, getattr(new, field), origin)
    _configured()
    return new


def setting_source(field: str) -> str:
    """Where the current value of setting ``field`` came from, for messages: ``configure()
    at app.py:4``, its environment variable, or ``the default``."""
    if field in _origins:
        return _origins[field]
    name = _env_var(field)
    return name if name in os.environ else "the default"


def describe_settings(settings: Settings, fields: Collection[str] = ("project_id", "prefix")
                      ) -> str:
    """``project 'p' (from PUBSUB_JOBS_PROJECT_ID), prefix 'jobs-' (from the default)``: the
    values that name resources, each with where it came from, so a mismatch between
    processes shows."""
    parts = []
    for field in fields:
        value = getattr(settings, field)
        label = "project" if field == "project_id" else field.replace("_", " ")
        if field == "project_id" and not value and settings.pubsub_emulator_host:
            parts.append(f"project {EMULATOR_PROJECT!r} (none is set: the emulator's "
                         "stand-in)")
        else:
            parts.append(f"{label} {value!r} (from {setting_source(field)})")
    return ", ".join(parts)


def project_resource_ids(settings: Settings, list_resources: Callable[[str], Iterable[Any]]
                         ) -> set[str]:
    """The ids of the project's topics or subscriptions, as ``list_resources("projects/P")``
    lists them; empty when they cannot be listed, as only a hint depends on them."""
    try:
        listed = list_resources(f"projects/{settings.require_project()}")
        return {resource.name.rsplit("/", 1)[-1] for resource in listed}
    except Exception:  # only a hint: the error it adds to is the point
        return set()


def naming_hint(settings: Settings, queue: str, existing: Collection[str],
                subscription: bool = False) -> str:
    """What an error about a queue's missing topic (or worker ``subscription``) adds: this
    process's naming settings with their sources and, when ``existing`` (the project's topic
    or subscription ids) holds the same queue under another prefix, that mismatch named."""
    own = f"{queue}-worker" if subscription else queue
    others = sorted({name[: -len(own)] for name in existing if name.endswith(own)
                     and f"{name[: -len(own)]}{queue}-dead-letter" in existing}
                    - {settings.prefix})
    hint = f"this process has {describe_settings(settings)}"
    if others:
        found = ", ".join(f"{p}{own}" for p in others)
        prefixes = " or ".join(repr(p) for p in others)
        hint += (f"; but {found} exists, made with prefix {prefixes}: the command or process "
                 "that created it did not have these settings. Give every process the same "
                 "ones: the module that calls configure() to each command with `pubsub-jobs "
                 "--app MODULE ...` (or PUBSUB_JOBS_APP), or PUBSUB_JOBS_* variables")
    return hint


def _call_site(frame: FrameType) -> str:
    """``configure() at app.py:4``: the file and line of the call."""
    return call_site(frame, "configure()")


def _given_source(field: str) -> str:
    """Where a setting that holds a value came from: as :func:`setting_source` says, or its
    environment variable's name for settings built in code (``Settings(queues=...)``)."""
    source = setting_source(field)
    return _env_var(field) if source == "the default" else source


def describe_queue(settings: Settings, queue: str) -> str:
    """``queue 'billing': ordered (from queue() at app.py:3); max_delivery_attempts 10
    (from queue() at app.py:3), ...``: what bootstrap makes of a queue, each value with
    where it came from."""
    return queue_description(queue, settings.queue_options(queue),
                             settings.queue_option_sources(queue))


def _warn_if_env_differs(field: str, value: Any, origin: str) -> None:
    name = _env_var(field)
    env = os.environ.get(name)
    if env is not None and isinstance(value, str | int | float) and str(value) != env:
        log.warning("%s sets %s=%r over %s=%r: a process that does not run it (a command "
                    "without --app) uses %r", origin, field, value, name, env, env)


def reset() -> None:
    """Forget configured settings so the environment is read again (for tests)."""
    global _settings
    with _lock:
        _settings = None
        _origins.clear()
    _configured()


def _env_var(field: str) -> str:
    return _errors.env_var(Settings.model_fields, field)


def _field_of(name: str) -> str | None:
    return _errors.field_of(Settings.model_fields, name)
