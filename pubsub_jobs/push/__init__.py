"""Push delivery: the HTTP endpoint Pub/Sub calls, ``POST /push/QUEUE``, for Cloud Run
services and anything else that answers requests rather than pulls.

Each pushed message runs through the core's ``perform`` and the same decision table as the
pull worker; the outcome becomes the HTTP answer (:mod:`.handler`). Requests are
authenticated with Google-signed OIDC tokens (:mod:`.auth`). The endpoint comes as

- :class:`PushASGIApp`, served by ``pubsub-jobs push-server`` (:class:`PushServer`, on
  uvicorn: extra ``push``) or mounted in Starlette or FastAPI;
- :class:`PushWSGIApp`, for WSGI servers and Flask;
- :func:`pubsub_jobs.adapters.django.push.push_view`, a Django view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pubsub_jobs._http.certificates import CachingRequest
from pubsub_jobs.push.asgi import PushASGIApp
from pubsub_jobs.push.auth import TokenVerifier
from pubsub_jobs.push.envelope import MAX_BODY_BYTES, PushedMessage, parse_envelope
from pubsub_jobs.push.handler import (
    DEFAULT_CONCURRENCY,
    PUSH_ACK_DEADLINE,
    PushHandler,
    PushResponse,
)
from pubsub_jobs.push.wsgi import PushWSGIApp

if TYPE_CHECKING:
    from pubsub_jobs.push.server import PushServer

__all__ = [
    "DEFAULT_CONCURRENCY",
    "MAX_BODY_BYTES",
    "PUSH_ACK_DEADLINE",
    "CachingRequest",
    "PushASGIApp",
    "PushHandler",
    "PushResponse",
    "PushServer",
    "PushWSGIApp",
    "PushedMessage",
    "TokenVerifier",
    "parse_envelope",
]


def __getattr__(name: str) -> Any:
    """``PushServer`` is imported on use: it needs uvicorn (the ``push`` extra), which the
    ASGI and WSGI applications do not."""
    if name == "PushServer":
        from pubsub_jobs.push.server import PushServer

        return PushServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
