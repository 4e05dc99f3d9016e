"""The web page for the person on call: queues, live workers and dead sets.

``pubsub-jobs dashboard`` serves it (:class:`~pubsub_jobs.dashboard.server.DashboardServer`);
:func:`~pubsub_jobs.dashboard.app.create_app` gives the ASGI application to mount elsewhere.
Needs the ``dashboard`` extra (Starlette, Jinja2, uvicorn): ``pip install
'pubsub-jobs[dashboard]'``. Workers are seen through their heartbeats
(:mod:`pubsub_jobs.worker.heartbeat`); queues and dead sets through :mod:`pubsub_jobs.admin`.
"""

from pubsub_jobs.dashboard.config import DashboardConfig

__all__ = ["DashboardConfig"]
