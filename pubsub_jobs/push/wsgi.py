"""The push endpoint as a WSGI application, for WSGI servers (gunicorn, waitress) and apps
(Flask: ``DispatcherMiddleware(app.wsgi_app, {"/jobs": push_app})``).

Each request runs in the server's own thread; :class:`~pubsub_jobs.push.handler.PushHandler`
lets ``concurrency`` jobs run at once and makes further requests wait for a slot, so give
the server at least that many threads (gunicorn ``--threads``).
"""

from __future__ import annotations

import http
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pubsub_jobs.push.handler import (
    DEFAULT_CONCURRENCY,
    LazyHandler,
    PushHandler,
    PushResponse,
)

StartResponse = Callable[..., Any]


class PushWSGIApp:
    """``POST /push/QUEUE`` for ``queues`` (and ``GET /healthz``), as a WSGI app.

    ``options`` go to :class:`~pubsub_jobs.push.handler.PushHandler`; nothing is read or
    opened until the first request (or :meth:`start`).
    """

    def __init__(self, queues: Sequence[str], *, concurrency: int = DEFAULT_CONCURRENCY,
                 **options: Any) -> None:
        self._handler = LazyHandler(queues, concurrency=concurrency, **options)

    @property
    def handler(self) -> PushHandler:
        return self._handler.get()

    def start(self) -> PushHandler:
        """Build the handler now; raises :class:`~pubsub_jobs.errors.ConfigurationError`
        when the settings are wrong."""
        return self._handler.get()

    def close(self) -> None:
        self._handler.close()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        handler = self._handler.get()
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or "/"
        response = handler.handle(method, path, environ.get("HTTP_AUTHORIZATION"),
                                  environ.get("CONTENT_LENGTH"), environ["wsgi.input"].read)
        return _respond(start_response, response)


def _respond(start_response: StartResponse, response: PushResponse) -> list[bytes]:
    headers = list(response.headers)
    if response.status != 204:
        headers += [("Content-Length", str(len(response.body))),
                    ("Content-Type", "text/plain; charset=utf-8")]
    start_response(f"{response.status} {http.HTTPStatus(response.status).phrase}", headers)
    return [response.body]
