"""Django integration: a backend for Django's tasks framework, the ``pubsub_worker``
management command, and the push endpoint as a view (:mod:`.push`).

    TASKS = {"default": {"BACKEND": "pubsub_jobs.adapters.django.PubSubBackend",
                         "QUEUES": ["default"], "OPTIONS": {"project_id": "my-project"}}}
    INSTALLED_APPS = [..., "pubsub_jobs.adapters.django"]   # python manage.py pubsub_worker

Works with ``django.tasks`` (Django 6) and with the ``django-tasks`` backport. The backend is
imported on first access, so listing this package in ``INSTALLED_APPS`` imports no more than
the app config while Django loads its apps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pubsub_jobs.adapters.django.backend import PubSubBackend

__all__ = ["PubSubBackend"]


def __getattr__(name: str) -> Any:
    if name == "PubSubBackend":
        from pubsub_jobs.adapters.django.backend import PubSubBackend

        return PubSubBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
