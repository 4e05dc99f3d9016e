"""The Django app ``pubsub_jobs.adapters.django``: it provides ``manage.py pubsub_worker``."""

from __future__ import annotations

from django.apps import AppConfig


class PubSubJobsConfig(AppConfig):  # type: ignore[misc]
    name = "pubsub_jobs.adapters.django"
    label = "pubsub_jobs"
    verbose_name = "pubsub-jobs"
