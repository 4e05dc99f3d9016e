"""What a worker is told: its queues and how it runs them, as one immutable value.

The command line, the supervisor (for its child processes) and Django's ``pubsub_worker``
all build a :class:`WorkerOptions` and hand it to the same entry point; nothing rebuilds a
command line to pass options on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pubsub_jobs.errors import ConfigurationError


class QueueSpec(BaseModel):
    """A queue to work on: how many jobs may run at once, over how many streams."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    concurrency: int = 10
    streams: int = 1

    def __init__(self, name: str, concurrency: int = 10, streams: int = 1) -> None:
        if concurrency < 1 or streams < 1:
            raise ConfigurationError(f"queue {name!r}: concurrency and streams are >= 1")
        if streams > concurrency:
            raise ConfigurationError(
                f"queue {name!r}: {streams} streams need at least as much concurrency"
            )
        super().__init__(name=name, concurrency=concurrency, streams=streams)

    @classmethod
    def parse(cls, text: str, *, concurrency: int = 10, streams: int = 1) -> QueueSpec:
        """``name``, ``name=CONCURRENCY`` or ``name=CONCURRENCYxSTREAMS``."""
        name, _, rest = text.partition("=")
        if not name:
            raise ConfigurationError(f"queue {text!r}: give a name, e.g. --queue default=8")
        if rest:
            conc, _, strm = rest.partition("x")
            try:
                concurrency = int(conc)
                streams = int(strm) if strm else streams
            except ValueError:
                raise ConfigurationError(
                    f"queue {text!r}: expected NAME=CONCURRENCY or NAME=CONCURRENCYxSTREAMS"
                ) from None
        return cls(name, concurrency, streams)


#: Default of :attr:`WorkerOptions.prefetch` (see the README's "Benchmarks" for the measure).
DEFAULT_PREFETCH = 40


class WorkerOptions(BaseModel):
    """How a worker runs. ``queues`` accepts specs or ``NAME[=N[xS]]`` strings.

    ``max_lease_duration``: how long a running job keeps its message leased; a job running
    longer is redelivered to another worker meanwhile. ``lease_seconds``: each lease renewal
    (see :mod:`pubsub_jobs.worker.leases`): a job may hold the GIL for three quarters of it
    and still run once, and a killed worker's messages come back within it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    queues: tuple[QueueSpec, ...]
    #: Modules to import (they register the jobs); the Django project's too when
    #: ``DJANGO_SETTINGS_MODULE`` is set.
    modules: tuple[str, ...] = ()
    #: Middleware paths replacing ``PUBSUB_JOBS_MIDDLEWARE`` (None: the settings').
    middleware: tuple[str, ...] | None = None
    #: Messages each stream holds beyond its threads, so a thread that finishes a job finds
    #: the next one waiting instead of waiting a round trip for it. They are not started:
    #: a stop nacks them at once; a killed worker's come back within ``lease_seconds``.
    prefetch: int = Field(DEFAULT_PREFETCH, ge=0, le=10_000)
    shutdown_timeout: float = Field(25.0, ge=0)
    burst: bool = False
    burst_idle: float = Field(2.0, ge=0)
    max_lease_duration: float = Field(3600.0, gt=0)
    lease_seconds: int = Field(60, ge=10, le=600)
    stuck_after: float = Field(900.0, gt=0)
    http_port: int | None = Field(None, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    #: Several worker processes under a supervisor that restarts them (None: this process).
    processes: int | None = Field(None, ge=1)
    #: Where a supervised child writes its status every second.
    status_file: Path | None = None
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    def __init__(self, **options: Any) -> None:
        try:
            super().__init__(**options)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid worker options: {_errors(exc)}") from None

    @field_validator("queues", mode="before")
    @classmethod
    def _parse_queues(cls, value: object) -> object:
        if isinstance(value, str | QueueSpec):
            value = [value]
        if isinstance(value, list | tuple):
            return tuple(QueueSpec.parse(q) if isinstance(q, str) else q for q in value)
        return value

    @model_validator(mode="after")
    def _some_queue(self) -> WorkerOptions:
        if not self.queues:
            raise ConfigurationError("a worker needs at least one queue (--queue NAME)")
        return self


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
    )
