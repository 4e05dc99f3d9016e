"""The dashboard as an ASGI application (Starlette): :func:`create_app`.

Serve it with ``pubsub-jobs dashboard`` (:mod:`.server`, on uvicorn) or mount it in an
ASGI server of your own. Its lifespan starts the heartbeat listener (a subscription of its
own on the workers' heartbeat topic) and deletes that subscription on shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from anyio import to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pubsub_jobs.dashboard.backend import AdminBackend, Backend
from pubsub_jobs.dashboard.config import DashboardConfig
from pubsub_jobs.dashboard.iap import IapVerifier
from pubsub_jobs.dashboard.listener import HeartbeatListener
from pubsub_jobs.dashboard.security import Guard, Sessions
from pubsub_jobs.dashboard.views import Views
from pubsub_jobs.dashboard.workers import WorkerBoard
from pubsub_jobs.settings import Settings, get_settings

__all__ = ["create_app"]

STATIC = Path(__file__).resolve().parent / "static"


def create_app(
    config: DashboardConfig,
    settings: Settings | None = None,
    *,
    backend: Backend | None = None,
    board: WorkerBoard | None = None,
    listen: bool = True,
) -> Starlette:
    """The dashboard for ``config`` (checked here: an unsafe one raises
    :class:`~pubsub_jobs.errors.ConfigurationError`).

    ``backend`` and ``board`` replace the admin functions and the worker board (tests);
    ``listen=False`` starts no heartbeat listener.
    """
    config.check()
    settings = settings or get_settings()
    board = board if board is not None else WorkerBoard()
    listener = HeartbeatListener(settings, board) if listen else None
    views = Views(config, backend or AdminBackend(settings, config.queues,
                                                  cache_seconds=config.refresh_seconds),
                  board, Sessions(config.secret), listener)
    iap = (IapVerifier(config.iap_audience, config.iap_certs_url)
           if config.iap_audience else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if listener is not None:
            await to_thread.run_sync(listener.start)
        try:
            yield
        finally:
            if listener is not None:
                await to_thread.run_sync(listener.close)

    app = Starlette(
        routes=[
            Route("/", views.index, name="index"),
            Route("/queues/{queue}/dead", views.dead, name="dead"),
            Route("/queues/{queue}/dead/retry", views.retry, methods=["POST"], name="retry"),
            Route("/queues/{queue}/dead/purge", views.purge, methods=["POST"], name="purge"),
            Route("/login", views.login, methods=["GET", "POST"], name="login"),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(Guard, config=config, sessions=views.sessions, iap=iap)],
        lifespan=lifespan,
    )
    app.state.views = views
    app.state.board = board
    app.state.listener = listener
    return app
