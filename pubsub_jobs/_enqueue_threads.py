"""The threads in which ``Job.aenqueue`` waits for Pub/Sub's confirmation."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

R = TypeVar("R")

#: Threads in which ``aenqueue`` calls wait for Pub/Sub's confirmation. They only wait, so
#: there are many: the event loop's default executor has min(32, CPUs + 4) threads (6 on two
#: cores), shared with everything else an application runs in threads, which would cap the
#: enqueues a web process has in flight.
AENQUEUE_THREADS = 64
_enqueue_pool: ThreadPoolExecutor | None = None
_enqueue_pool_lock = threading.Lock()


async def in_enqueue_thread(fn: Callable[[Any], R], arg: Any) -> R:
    """``fn(arg)`` in an enqueue thread, in this task's context (a middleware's trace span
    and other context variables go along, as with ``asyncio.to_thread``)."""
    global _enqueue_pool
    if _enqueue_pool is None:
        with _enqueue_pool_lock:
            if _enqueue_pool is None:
                _enqueue_pool = ThreadPoolExecutor(
                    AENQUEUE_THREADS, thread_name_prefix="pubsub-jobs-aenqueue")
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_enqueue_pool, context.run, fn, arg)
