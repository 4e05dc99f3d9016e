"""Run Django tasks on the pubsub-jobs worker.

The worker runs only the tasks it found: those in the ``tasks`` modules of installed apps
and in the modules named on its command line. Each is registered as a job under its
``module_path``; a message naming anything else is dead-lettered as ``unknown_job``, and no
module is ever imported because a message names it (Django's own ``Task`` unpickling would
import it: it is not used).

Around each task, as Django's request cycle does: stale database connections are closed
before and after, and ``task_started`` / ``task_finished`` are sent. An ``async def`` task
runs through ``async_to_sync`` in the worker's thread, so the ORM calls it makes with
``sync_to_async`` use (and close) that thread's connections.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from traceback import format_exception
from types import ModuleType
from typing import Any

from pubsub_jobs.context import current_job
from pubsub_jobs.jobs import Job, Registry, default_registry

log = logging.getLogger(__name__)


def setup_worker(modules: Sequence[str] = (), registry: Registry | None = None) -> Registry:
    """Prepare a worker process of a Django project; returns the registry holding its tasks.

    Sets Django up (once), makes the Pub/Sub backend's settings (``OPTIONS`` over the
    environment) pubsub-jobs' settings for the whole process, imports ``modules`` and
    registers the tasks found with those of installed apps (``registry`` defaults to the
    default registry, so ``@job`` jobs of the same modules run too).
    """
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()
    from pubsub_jobs.settings import configure

    backend = worker_backend()
    if backend is not None:
        configure(**backend.settings.model_dump(), origin="Django's TASKS backend OPTIONS")
    else:
        log.warning("no TASKS backend is pubsub_jobs.adapters.django.PubSubBackend; using "
                    "pubsub-jobs' settings from the environment")
    registry = registry if registry is not None else default_registry
    tasks = discover_tasks(modules)
    for task in tasks:
        register_task(task, registry)
    log.info("django tasks: %s", ", ".join(sorted(t.module_path for t in tasks)) or "none")
    return registry


def worker_backend(alias: str | None = None) -> Any:
    """The Pub/Sub backend whose settings a worker uses: ``alias``, else ``"default"`` when
    it is one, else the first one in ``TASKS``; None when there is none."""
    from pubsub_jobs.adapters.django import _compat
    from pubsub_jobs.adapters.django.backend import PubSubBackend

    handler = _compat.task_backends
    if alias is not None:
        return handler[alias]
    aliases = list(handler.settings)
    if "default" in aliases:
        aliases.remove("default")
        aliases.insert(0, "default")
    for name in aliases:
        backend = handler[name]
        if isinstance(backend, PubSubBackend):
            return backend
    return None


def discover_tasks(modules: Iterable[str] = ()) -> list[Any]:
    """The Pub/Sub backend's tasks in the ``tasks`` modules of installed apps and in
    ``modules`` (imported here), one per ``module_path``."""
    from django.apps import apps
    from django.utils.module_loading import autodiscover_modules

    from pubsub_jobs.adapters.django import _compat

    autodiscover_modules("tasks")
    sources: list[ModuleType] = []
    for app in apps.get_app_configs():
        module = sys.modules.get(f"{app.name}.tasks")
        if module is not None:
            sources.append(module)
    sources += [importlib.import_module(name) for name in modules]
    found: dict[str, Any] = {}
    for module in sources:
        for value in vars(module).values():
            if isinstance(value, _compat.Task) and _on_pubsub(value):
                found.setdefault(value.module_path, value)
    return list(found.values())


def register_task(task: Any, registry: Registry) -> Job[..., None]:
    """Register ``task`` as a job named by its ``module_path``, on its queue."""
    return Job(task_runner(task), name=task.module_path, queue=task.queue_name,
               registry=registry)


def task_registry(tasks: Iterable[Any]) -> Registry:
    """A new registry holding just ``tasks``."""
    registry = Registry()
    for task in tasks:
        register_task(task, registry)
    return registry


def task_runner(task: Any) -> Callable[..., None]:
    """The function the worker calls for ``task``: it takes the task's arguments (checked
    against the task function's signature, passed on as the JSON they are)."""
    from pubsub_jobs.adapters.django.backend import call_signature

    def run(*args: Any, **kwargs: Any) -> None:
        run_task(task, list(args), kwargs)

    run.__module__ = task.func.__module__
    run.__name__ = task.func.__name__
    run.__qualname__ = task.func.__qualname__
    run.__doc__ = task.func.__doc__
    run.__annotations__ = {}
    run.__dict__["__signature__"] = call_signature(task)
    return run


def run_task(task: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Run one attempt of ``task`` inside a job (``current_job()`` describes it).

    Sends ``task_started`` and ``task_finished`` (status FAILED, with the error, when the
    attempt raised; the exception then goes on to the worker, which retries or dead-letters
    the job as for any job). The ``TaskResult`` has the job id, and one worker id per attempt
    so that ``TaskContext.attempt`` is the delivery attempt.
    """
    from django import db
    from django.utils import timezone

    from pubsub_jobs.adapters.django import _compat

    job = current_job()
    sender = type(task.get_backend())
    status = _compat.TaskResultStatus
    db.reset_queries()
    db.close_old_connections()
    try:
        now = timezone.now()
        result = _compat.TaskResult(
            task=task,
            id=job.job_id,
            status=status.RUNNING,
            enqueued_at=_django_time(job.enqueued_at),
            started_at=now,
            last_attempted_at=now,
            finished_at=None,
            args=args,
            kwargs=kwargs,
            backend=task.backend,
            errors=[],
            worker_ids=[worker_id()] * job.attempt,
        )
        _compat.task_started.send(sender=sender, task_result=result)
        try:
            if task.takes_context:
                value = task.call(_compat.TaskContext(task_result=result), *args, **kwargs)
            else:
                value = task.call(*args, **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            object.__setattr__(result, "finished_at", timezone.now())
            object.__setattr__(result, "status", status.FAILED)
            exc_type = type(exc)
            result.errors.append(_compat.TaskError(
                exception_class_path=f"{exc_type.__module__}.{exc_type.__qualname__}",
                traceback="".join(format_exception(exc)),
            ))
            _compat.task_finished.send(sender=sender, task_result=result)
            raise
        try:
            object.__setattr__(result, "_return_value", _compat.normalize_json(value))
        except (TypeError, ValueError):
            # No result store keeps it; the task's work is done, so it is not run again.
            log.warning("task %s %s returned a value that is not JSON (%s); ignoring it",
                        task.module_path, job.job_id, type(value).__name__)
        object.__setattr__(result, "finished_at", timezone.now())
        object.__setattr__(result, "status", status.SUCCESSFUL)
        _compat.task_finished.send(sender=sender, task_result=result)
    finally:
        db.close_old_connections()


def worker_id() -> str:
    """This worker process, as Django's ``TaskResult.worker_ids`` lists it."""
    return f"{socket.gethostname()}-{os.getpid()}"[:64]


def _on_pubsub(task: Any) -> bool:
    """Whether ``task`` is enqueued by a Pub/Sub backend (only those reach the worker)."""
    from pubsub_jobs.adapters.django.backend import PubSubBackend

    try:
        return isinstance(task.get_backend(), PubSubBackend)
    except Exception:
        return False


def _django_time(moment: datetime) -> datetime:
    """An aware UTC time as Django holds times: aware with USE_TZ, else naive local."""
    from django.conf import settings
    from django.utils import timezone

    if settings.USE_TZ:
        return moment
    naive: datetime = timezone.make_naive(moment)
    return naive
