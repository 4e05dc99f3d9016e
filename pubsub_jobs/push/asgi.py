"""The push endpoint as an ASGI application: ``pubsub-jobs push-server`` serves it with
uvicorn, and any ASGI app can mount it (Starlette, FastAPI: ``app.mount("/", push_app)``).

The event loop reads requests, verifies tokens against cached certificates (one RSA
signature check; a verification that must fetch the certificates runs in the loop's default
executor instead) and writes answers; jobs run in a pool of exactly
``concurrency`` threads, so that many jobs run at once and further requests wait for a
thread without holding one (the server bounds how many wait: see
:class:`~pubsub_jobs.push.server.PushServer`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pubsub_jobs.errors import PushRefused
from pubsub_jobs.push.envelope import (
    MAX_BODY_BYTES,
    check_length,
    parse_content_length,
    too_large,
)
from pubsub_jobs.push.handler import (
    DEFAULT_CONCURRENCY,
    HEALTH_PATH,
    LazyHandler,
    PushHandler,
    PushResponse,
)

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class PushASGIApp:
    """``POST /push/QUEUE`` for ``queues`` (and ``GET /healthz``), as an ASGI 3 app.

    ``options`` go to :class:`~pubsub_jobs.push.handler.PushHandler` (``settings``,
    ``registry``, ``middleware``, ``adapter``, ``verifier``). Nothing is read or opened
    until the first request or the ASGI lifespan's startup (or :meth:`start`), where a
    configuration error stops the server from starting.
    """

    def __init__(self, queues: Sequence[str], *, concurrency: int = DEFAULT_CONCURRENCY,
                 **options: Any) -> None:
        self.concurrency = concurrency
        self._handler = LazyHandler(queues, concurrency=concurrency, **options)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def handler(self) -> PushHandler:
        return self._handler.get()

    def start(self) -> PushHandler:
        """Build the handler and the job threads now (idempotent); raises
        :class:`~pubsub_jobs.errors.ConfigurationError` when the settings are wrong."""
        handler = self._handler.get()
        if self._pool is not None:
            return handler
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency,
                                                thread_name_prefix="pubsub-jobs-push")
        return handler

    def close(self) -> None:
        """Stop taking jobs (running ones go on in their threads) and close the handler."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._handler.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            response = await self._respond(scope, receive)
            if response is not None:
                await _send(send, response)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _respond(self, scope: Scope, receive: Receive) -> PushResponse | None:
        """The answer, or None when the client left before its body arrived."""
        method: str = scope["method"]
        path = _path(scope)
        if method == "GET" and path == HEALTH_PATH:
            return PushResponse(200, b"ok\n")
        try:
            handler = self.start()
        except Exception:
            log.exception("the push endpoint cannot start")
            return PushResponse.of(500)
        pool = self._pool
        if pool is None:  # closed meanwhile: the server is stopping
            return PushResponse.of(503)
        loop = asyncio.get_running_loop()
        headers = scope.get("headers") or []
        try:
            authorization = _header(headers, b"authorization", refuse=401)
            if handler.verifier.needs_network:  # a fetch of certificates: not in the loop
                await loop.run_in_executor(None, handler.authenticate, authorization)
            else:  # a signature check on cached keys, well under a millisecond
                handler.authenticate(authorization)
            queue = handler.route(method, path)
            body = await _read_body(receive, parse_content_length(
                _header(headers, b"content-length", refuse=400)))
            if body is None:
                return None
            try:
                job = loop.run_in_executor(pool, handler.process, queue, body)
            except RuntimeError:  # the pool was shut down: the server is stopping
                return PushResponse.of(503)
            response: PushResponse = await job
            return response
        except PushRefused as exc:
            return handler.refused(exc, path)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.start()
                except Exception as exc:
                    log.error("the push endpoint cannot start: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                handler = self._handler.built
                if handler is not None:
                    log.info("push endpoint stopped: %s", handler.stats.snapshot())
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _path(scope: Scope) -> str:
    """The request's path below where the app is mounted (``root_path``)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        path = path[len(root):]
    return path


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes, *, refuse: int) -> str | None:
    """The header's value; :class:`PushRefused` (``refuse``) when it is given more than once."""
    found = [value for key, value in headers if key.lower() == name]
    if len(found) > 1:
        raise PushRefused(refuse, f"{name.decode()} is given {len(found)} times")
    return found[0].decode("latin-1") if found else None


async def _read_body(receive: Receive, content_length: int | None) -> bytes | None:
    """The body, read up to :data:`MAX_BODY_BYTES` (413 beyond); None if the client left."""
    check_length(content_length)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, response: PushResponse) -> None:
    headers: list[tuple[bytes, bytes]] = []
    if response.status != 204:  # a 204 has neither body nor length
        headers += [(b"content-length", str(len(response.body)).encode()),
                    (b"content-type", b"text/plain; charset=utf-8")]
    headers += [(k.lower().encode(), v.encode()) for k, v in response.headers]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
