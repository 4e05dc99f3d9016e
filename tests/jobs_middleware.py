"""Jobs for the middleware tests (tests/unit/middleware/, tests/emulator/test_middleware.py):
they record what they see while they run."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from opentelemetry import trace

from pubsub_jobs import job

#: What the jobs saw: (event, value) pairs, shared with the middleware under test.
EVENTS: list[tuple[str, object]] = []
#: Called inside ``probe``, to look at the world while a job runs.
PROBES: list[Callable[[], None]] = []
_lock = threading.Lock()


def record(event: str, value: object = None) -> None:
    with _lock:
        EVENTS.append((event, value))


@job(queue="default")
def probe(tag: str) -> None:
    record("job", tag)
    for check in PROBES:
        check()


@job(queue="default")
def traced_sync(tag: str) -> None:
    record("sync", trace.get_current_span().get_span_context())


@job(queue="default")
async def traced_async(tag: str) -> None:
    await asyncio.sleep(0)
    record("async", trace.get_current_span().get_span_context())


@job(queue="default", max_attempts=2)
def always_fails() -> None:
    raise RuntimeError("boom")


@job(queue="default", discard_on=(LookupError,))
def discarded() -> None:
    raise KeyError("gone")
