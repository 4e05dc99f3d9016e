"""Django's tasks framework, wherever it lives: ``django.tasks`` (Django 6+) or the
``django_tasks`` backport (``pip install django-tasks``) on older Django.

Everything is looked up at import time of this module, which the backend imports, so one
place decides; both frameworks have the same classes and signals under these names.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from pubsub_jobs.errors import ConfigurationError


def _import(*names: str) -> list[ModuleType]:
    return [importlib.import_module(name) for name in names]


try:
    _tasks, _base, _backends, _signals, _exceptions = _import(
        "django.tasks", "django.tasks.base", "django.tasks.backends.base",
        "django.tasks.signals", "django.tasks.exceptions",
    )
    _utils = importlib.import_module("django.utils.json")
    InvalidTask: Any = _exceptions.InvalidTask
    #: Where the framework lives, for messages.
    FRAMEWORK = "django.tasks"
except ModuleNotFoundError as exc:
    if exc.name not in ("django.tasks", "django"):
        raise
    try:
        _tasks, _base, _backends, _signals, _exceptions, _utils = _import(
            "django_tasks", "django_tasks.base", "django_tasks.backends.base",
            "django_tasks.signals", "django_tasks.exceptions", "django_tasks.utils",
        )
    except ModuleNotFoundError as backport_exc:
        if backport_exc.name not in ("django_tasks", "django"):
            raise
        raise ConfigurationError(
            "the Django backend needs Django 6 (django.tasks) or, on older Django, the "
            "django-tasks backport: pip install 'pubsub-jobs[django]' (Django 6) or "
            "pip install 'pubsub-jobs[django-tasks]' (Django 5.2)"
        ) from backport_exc
    InvalidTask = _exceptions.InvalidTaskError
    FRAMEWORK = "django_tasks"

BaseTaskBackend: Any = _backends.BaseTaskBackend
Task: Any = _base.Task
TaskContext: Any = _base.TaskContext
TaskError: Any = _base.TaskError
TaskResult: Any = _base.TaskResult
TaskResultStatus: Any = _base.TaskResultStatus
task_backends: Any = _tasks.task_backends
task_enqueued: Any = _signals.task_enqueued
task_started: Any = _signals.task_started
task_finished: Any = _signals.task_finished
normalize_json: Any = _utils.normalize_json
