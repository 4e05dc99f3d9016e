"""Middleware: hooks around enqueue and perform, for logging, metrics and tracing.

Subclass :class:`Middleware` and override the hooks you need; every hook is a no-op here.
``before_*`` hooks run in the order the middleware were given, ``after_*`` hooks (and
:meth:`~Middleware.on_rejected`) in reverse, and :meth:`~Middleware.perform_context`
managers nest the same way, so the first middleware wraps all the others::

    A.before_perform, B.before_perform
        enter A.perform_context, enter B.perform_context
            the job
        exit B.perform_context, exit A.perform_context
    B.after_perform, A.after_perform

Built-ins: :class:`~pubsub_jobs.middleware.logging.StructuredLogging`,
:class:`~pubsub_jobs.middleware.prometheus.PrometheusMetrics` (extra ``prometheus``) and
:class:`~pubsub_jobs.middleware.opentelemetry.OpenTelemetry` (extra ``opentelemetry``).
Operators name middleware in the settings (``PUBSUB_JOBS_MIDDLEWARE``) or on the command line
(``pubsub-jobs worker --middleware PATH``); :func:`load_middleware` imports them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pubsub_jobs._hooks import Middleware, MiddlewareChain
from pubsub_jobs.errors import ConfigurationError

if TYPE_CHECKING:
    from pubsub_jobs.settings import Settings

__all__ = ["BUILTIN", "Middleware", "MiddlewareChain", "import_middleware", "load_middleware"]

#: Short names for the built-in middleware, accepted wherever a path is.
BUILTIN = {
    "logging": "pubsub_jobs.middleware.logging:StructuredLogging",
    "prometheus": "pubsub_jobs.middleware.prometheus:PrometheusMetrics",
    "opentelemetry": "pubsub_jobs.middleware.opentelemetry:OpenTelemetry",
}


def import_middleware(path: str) -> Middleware:
    """The middleware named by ``path``: ``package.module:Name`` or ``package.module.Name``
    (a :class:`Middleware` subclass, instantiated with no arguments, or an instance), or a
    short name of :data:`BUILTIN`.

    Paths come from the operator (settings, command line), never from a message.
    """
    target = BUILTIN.get(path, path)
    module_name, colon, attr = target.partition(":")
    if not colon:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ConfigurationError(
            f"middleware {path!r}: expected an import path such as "
            f"'myapp.middleware:AuditLog' or one of {', '.join(BUILTIN)}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import middleware {path!r}: {exc}") from exc
    obj: object = module
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ConfigurationError(
            f"cannot import middleware {path!r}: module {module_name!r} has no {attr!r}"
        ) from None
    if isinstance(obj, Middleware):
        return obj
    if isinstance(obj, type) and issubclass(obj, Middleware):
        try:
            return obj()
        except TypeError as exc:
            raise ConfigurationError(
                f"middleware {path!r} must be constructible without arguments: {exc}"
            ) from exc
    raise ConfigurationError(f"middleware {path!r} is {obj!r}, not a Middleware subclass")


def load_middleware(settings: Settings | None = None) -> list[Middleware]:
    """The middleware named in the settings (``PUBSUB_JOBS_MIDDLEWARE``), in order."""
    if settings is None:
        from pubsub_jobs.settings import get_settings

        settings = get_settings()
    return [import_middleware(path) for path in settings.middleware]
