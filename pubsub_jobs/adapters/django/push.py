"""The push endpoint as a Django view, for a project's ``urls.py``::

    from django.urls import path
    from pubsub_jobs.adapters.django.push import push_view

    urlpatterns = [
        path("push/<str:queue>", push_view()),
    ]

The view serves the queues of the Pub/Sub ``TASKS`` backend (its ``QUEUES``) unless given
``queues``, and runs the ``django.tasks`` tasks of installed apps (and ``modules``), as
``pubsub_worker`` does; the backend's ``OPTIONS`` are the settings (``push_audience``,
``push_service_account``, ...). It is exempt from CSRF (Pub/Sub sends no CSRF token: the
OIDC token authenticates it) and reads the body itself, up to 10 MB, whatever
``DATA_UPLOAD_MAX_MEMORY_SIZE`` says. Django is imported when :func:`push_view` is called.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

from pubsub_jobs.push.handler import DEFAULT_CONCURRENCY, PushHandler


def push_view(
    queues: Sequence[str] | None = None,
    *,
    modules: Sequence[str] = (),
    concurrency: int = DEFAULT_CONCURRENCY,
    **options: Any,
) -> Callable[..., Any]:
    """A view for ``path("push/<str:queue>", ...)``; ``options`` go to
    :class:`~pubsub_jobs.push.handler.PushHandler`. Tasks are found and the settings read on
    the first request."""
    from django.http import HttpResponse
    from django.views.decorators.csrf import csrf_exempt

    made: list[PushHandler] = []
    lock = threading.Lock()

    def handler() -> PushHandler:
        with lock:
            if not made:
                made.append(_build(queues, modules, concurrency, options))
            return made[0]

    def view(request: Any, queue: str) -> Any:
        response = handler().handle(
            request.method or "GET",
            f"/push/{queue}",
            request.headers.get("Authorization"),
            request.META.get("CONTENT_LENGTH"),
            request.read,
        )
        answer = HttpResponse(response.body, status=response.status,
                              content_type="text/plain; charset=utf-8")
        for name, value in response.headers:
            answer[name] = value
        return answer

    return cast(Callable[..., Any], csrf_exempt(view))


def _build(queues: Sequence[str] | None, modules: Sequence[str], concurrency: int,
           options: dict[str, Any]) -> PushHandler:
    from pubsub_jobs.adapters.django.worker import setup_worker, worker_backend
    from pubsub_jobs.errors import ConfigurationError

    registry = setup_worker(modules, options.pop("registry", None))
    if queues is None:
        backend = worker_backend()
        if backend is None:
            raise ConfigurationError(
                "push_view() without queues serves the QUEUES of a TASKS backend "
                "pubsub_jobs.adapters.django.PubSubBackend, and there is none: name them, "
                "push_view(queues=[...])"
            )
        queues = sorted(backend.queues)
    return PushHandler(queues, registry=registry, concurrency=concurrency, **options)
