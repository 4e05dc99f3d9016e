"""Where ``async def`` jobs run: one event loop in a daemon thread, shared by every job
thread of a delivery path (:class:`~pubsub_jobs.perform.Performer` hands coroutines to it)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any


class AsyncRunner:
    """One event loop in a daemon thread, where ``async def`` jobs run.

    Job threads hand coroutines over and wait for their result, so a sync and an async job
    are settled the same way.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the loop and return its result, or raise what it raised, here.

        Whatever the job raises (``SystemExit`` and ``KeyboardInterrupt`` too) is caught in
        its task and re-raised in the calling thread, so it never stops the event loop that
        every other async job shares.
        """
        future: Future[Any] = asyncio.run_coroutine_threadsafe(
            _contained(coro), self._ensure_loop()
        )
        result = future.result()
        if isinstance(result, _Raised):
            raise result.exc
        return result

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="pubsub-jobs-async", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()


@dataclass(frozen=True, slots=True)
class _Raised:
    """A BaseException an async job raised, carried out of the event loop as a value."""

    exc: BaseException


async def _contained(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return await coro
    except BaseException as exc:  # noqa: B036 - a job's SystemExit must not stop the loop
        return _Raised(exc)
