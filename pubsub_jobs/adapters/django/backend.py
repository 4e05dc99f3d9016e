"""``PubSubBackend``: a backend of Django's tasks framework that enqueues through Pub/Sub.

Django builds a backend (one per thread) as soon as a tasks module is imported, so the
constructor only checks the names in ``OPTIONS``: it reads no environment and opens no
connection. Settings are resolved, and the Pub/Sub adapter built, on first use; the adapter
is shared by every thread's instance of the same alias.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from pubsub_jobs.adapters.django import _compat
from pubsub_jobs.adapters.pubsub import PubSubAdapter
from pubsub_jobs.errors import ConfigurationError, InvalidArguments
from pubsub_jobs.message import JobMessage, new_job_id, utcnow
from pubsub_jobs.settings import Settings, get_settings

#: OPTIONS that belong to the backend rather than to pubsub-jobs' settings.
BACKEND_OPTIONS = frozenset({"enqueue_on_commit"})

_shared_lock = threading.Lock()
_shared: dict[str, tuple[Settings, PubSubAdapter]] = {}


class PubSubBackend(_compat.BaseTaskBackend):  # type: ignore[misc]
    """Enqueues ``django.tasks`` tasks as pubsub-jobs messages (wire format v1).

    A task's ``module_path`` is the message's ``job_name`` and the ``TaskResult.id`` that
    ``enqueue`` returns is its ``job_id``, so dead jobs, retries and the command line treat
    tasks like any job. ``OPTIONS`` are pubsub-jobs settings by their lower-case names
    (``project_id``, ``prefix``, ``cloud_tasks_location``, ...), which win over the
    environment, plus ``enqueue_on_commit``: publish only once the current database
    transaction commits (never, if it rolls back).
    """

    supports_defer = True
    """``using(run_after=...)`` holds the task in Cloud Tasks until it is due."""

    supports_async_task = True
    """``async def`` tasks run on the worker too."""

    supports_get_result = False
    """Results are not stored (yet): ``get_result`` needs a result store."""

    supports_priority = False
    """Pub/Sub delivers in no priority order; a priority would need a result store too."""

    def __init__(self, alias: str, params: Mapping[str, Any]) -> None:
        super().__init__(alias, params)
        options = dict(self.options)
        self.enqueue_on_commit = bool(options.pop("enqueue_on_commit", False))
        unknown = sorted(set(options) - set(Settings.model_fields))
        if unknown:
            known = ", ".join(sorted({*Settings.model_fields, *BACKEND_OPTIONS}))
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS'] has unknown key(s) {', '.join(unknown)}; "
                f"pubsub-jobs knows {known}"
            )
        self._overrides = options
        self._settings: tuple[Settings, Settings] | None = None

    @property
    def settings(self) -> Settings:
        """pubsub-jobs' settings (``configure()``, else the environment) with ``OPTIONS``
        over them; resolved on first use and again whenever ``configure()`` changes them."""
        base = get_settings()
        cached = self._settings
        if cached is not None and cached[0] is base:
            return cached[1]
        merged = base
        if self._overrides:
            try:
                merged = Settings(**{**base.model_dump(), **self._overrides})
            except ValueError as exc:
                raise ConfigurationError(
                    f"invalid OPTIONS in TASKS[{self.alias!r}]: {exc}"
                ) from exc
        self._settings = (base, merged)
        return merged

    @property
    def adapter(self) -> PubSubAdapter:
        """The Pub/Sub adapter of this alias, shared by all threads, built on first use."""
        settings = self.settings
        stale = None
        with _shared_lock:
            entry = _shared.get(self.alias)
            if entry is not None and (entry[0] is settings or entry[0] == settings):
                return entry[1]
            adapter = PubSubAdapter(settings)
            _shared[self.alias] = (settings, adapter)
            if entry is not None:
                stale = entry[1]
        if stale is not None:
            stale.close()
        return adapter

    def enqueue(self, task: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Publish the task (or hold it in Cloud Tasks until ``run_after``); returns its
        ``TaskResult``, whose ``id`` is the job id. Arguments that do not fit the function
        or are not JSON raise :class:`~pubsub_jobs.errors.InvalidArguments` here, never in
        the worker."""
        self.validate_task(task)
        bind_arguments(task, args, kwargs)
        try:
            result = _compat.TaskResult(
                task=task,
                id=new_job_id(),
                status=_compat.TaskResultStatus.READY,
                enqueued_at=None,
                started_at=None,
                last_attempted_at=None,
                finished_at=None,
                args=list(args),
                kwargs=dict(kwargs),
                backend=self.alias,
                errors=[],
                worker_ids=[],
            )
        except (TypeError, ValueError) as exc:
            raise InvalidArguments(
                f"task {task.module_path}: arguments must be JSON (str, int, float, bool, "
                f"None, lists and dicts of them): {exc}"
            ) from exc
        message = JobMessage(
            job_name=task.module_path,
            queue=task.queue_name,
            args=result.args,
            kwargs=result.kwargs,
            job_id=result.id,
            scheduled_at=_aware(task.run_after),
        )
        if self.enqueue_on_commit:
            message.encode()  # refuse an oversized task now, not at commit
            transaction.on_commit(partial(self._publish, message, result))
        else:
            self._publish(message, result)
        return result

    def _publish(self, message: JobMessage, result: Any) -> None:
        self.adapter.enqueue(replace(message, enqueued_at=utcnow()))
        object.__setattr__(result, "enqueued_at", timezone.now())
        _compat.task_enqueued.send(type(self), task_result=result)

    def check(self, **kwargs: Any) -> list[Any]:
        """System check: the settings resolve (OPTIONS and environment are valid)."""
        from django.core import checks

        try:
            self.settings  # noqa: B018
        except (ConfigurationError, ValueError) as exc:
            return [checks.Error(str(exc), obj=f"TASKS[{self.alias!r}]", id="pubsub_jobs.E001")]
        return []


def call_signature(task: Any) -> inspect.Signature:
    """The task function's signature as callers see it: without ``context`` when the task
    takes one, and without annotations (Django tasks take JSON as it is)."""
    signature = inspect.signature(task.func)
    params = list(signature.parameters.values())
    if task.takes_context:
        params = params[1:]
    return signature.replace(
        parameters=[p.replace(annotation=inspect.Parameter.empty) for p in params],
        return_annotation=inspect.Signature.empty,
    )


def bind_arguments(task: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse arguments the task function cannot take."""
    try:
        call_signature(task).bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidArguments(f"task {task.module_path}: {exc}") from None


def _aware(moment: datetime | None) -> datetime | None:
    """``run_after`` as an aware datetime (a naive one is in Django's time zone)."""
    if moment is None or timezone.is_aware(moment):
        return moment
    if django_settings.USE_TZ:
        raise ConfigurationError("run_after must be an aware datetime")
    aware: datetime = timezone.make_aware(moment)
    return aware
