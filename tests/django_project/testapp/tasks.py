"""The test project's tasks, found by the worker in this installed app's tasks module."""

from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections

from pubsub_jobs import current_job
from tests.django_project.testapp.models import Run

try:
    from django.tasks import task
except ImportError:  # Django < 6: the django-tasks backport
    from django_tasks import task

#: The database connection (wrapper) of each thread a task ran in, to see them closed.
CONNECTIONS: list[Any] = []


def remember_connection() -> None:
    CONNECTIONS.append(connections["default"])


@task
def record(tag: str, value: int = 0) -> int:
    Run.objects.create(tag=tag, task="record", value=value, job_id=current_job().job_id,
                       scheduled_at=current_job().scheduled_at)
    remember_connection()
    return value


@task(queue_name="mailers")
async def arecord(tag: str) -> None:
    await Run.objects.acreate(tag=tag, task="arecord", job_id=current_job().job_id)
    await sync_to_async(remember_connection)()  # the thread the ORM used


@task(takes_context=True)
def flaky(context: Any, tag: str) -> None:
    Run.objects.create(tag=tag, task="flaky", attempt=context.attempt,
                       job_id=context.task_result.id)
    if context.attempt < 2:
        raise RuntimeError("the first attempt fails")


@task
def broken(tag: str) -> None:
    raise ValueError(f"broken {tag}")


@task(backend="immediate")
def elsewhere(tag: str) -> None:
    """A task of a backend that is not Pub/Sub: the worker does not run it."""
    Run.objects.create(tag=tag, task="elsewhere")
