"""The Django app ``pubsub_jobs.adapters.django``: it provides ``manage.py pubsub_worker``
and registers the Pub/Sub tasks of installed apps' ``tasks`` modules as jobs."""

from __future__ import annotations

from django.apps import AppConfig


class PubSubJobsConfig(AppConfig):  # type: ignore[misc]
    name = "pubsub_jobs.adapters.django"
    label = "pubsub_jobs"
    verbose_name = "pubsub-jobs"

    def ready(self) -> None:
        """Import the ``tasks`` module of each installed app (as the admin imports
        ``admin`` modules) and register its Pub/Sub tasks in the default registry, so any
        worker of this process, such as the pytest plugin's ``drain_queues``, runs them."""
        from pubsub_jobs.adapters.django.worker import discover_tasks, register_task
        from pubsub_jobs.jobs import default_registry

        for task in discover_tasks():
            register_task(task, default_registry)
