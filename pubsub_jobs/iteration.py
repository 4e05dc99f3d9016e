"""Iterating jobs: long jobs that yield a cursor after each item and resume from it.

Everything about them is here: what makes a function an iterating job
(:func:`is_iterating`), running one stretch until it ends or a checkpoint is due
(:func:`run_stretch`), and the continuation message that resumes it (:func:`continuation`,
counted by the ``iteration`` attribute). :class:`~pubsub_jobs.perform.Performer` runs the
stretch; :func:`~pubsub_jobs.delivery.settle` publishes the continuation before the running
message is done with.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from pubsub_jobs.context import JobContext, _current
from pubsub_jobs.errors import JobDefinitionError
from pubsub_jobs.message import JobMessage
from pubsub_jobs.outcome import PREVIOUS_ATTEMPTS, RESCHEDULED_FROM, Action, Outcome, Reason

if TYPE_CHECKING:
    from pubsub_jobs._async_runner import AsyncRunner
    from pubsub_jobs._codec import ArgumentCodec

log = logging.getLogger(__name__)

#: Seconds an iterating job runs before it checkpoints (a ``@job`` option).
DEFAULT_CHECKPOINT_EVERY = 60.0
#: Attribute of an iterating job's continuation: how many continuations came before it.
ITERATION = "iteration"


def is_iterating(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` is an iterating job: a generator (or async generator) function with a
    keyword-only ``cursor`` argument that defaults to None. A generator without one is
    refused: nothing would resume it."""
    if not (inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)):
        return False
    cursor = inspect.signature(fn).parameters.get("cursor")
    if (cursor is None or cursor.kind is not inspect.Parameter.KEYWORD_ONLY
            or cursor.default is not None):
        raise JobDefinitionError(
            f"job {name!r} is a generator, so it is an iterating job: give it a keyword-only "
            "argument `cursor` defaulting to None (`def job(..., *, cursor: int | None = None)`)"
            " and yield the cursor after each item it finished"
        )
    return True


def iteration(attributes: Mapping[str, str]) -> int:
    """The continuation count of a message (0 for the first stretch of a job)."""
    text = attributes.get(ITERATION)
    try:
        return max(0, int(text)) if text else 0
    except ValueError:
        log.warning("ignoring attribute %s=%r: not a number", ITERATION, text)
        return 0


def continuation(message: JobMessage, cursor: Any) -> JobMessage:
    """The message that resumes ``message`` after ``cursor`` (already encoded as JSON): same
    job id and enqueue time, the next ``iteration``, and attempts counted afresh."""
    attributes = {k: v for k, v in message.attributes.items()
                  if k not in (PREVIOUS_ATTEMPTS, RESCHEDULED_FROM)}
    attributes[ITERATION] = str(iteration(message.attributes) + 1)
    return replace(message, kwargs={**message.kwargs, "cursor": cursor}, scheduled_at=None,
                   attributes=attributes)


class PerformContext(Protocol):
    """The middleware hook a stretch runs in (part of the perform hooks)."""

    def perform_context(self, context: JobContext) -> AbstractContextManager[Any]: ...


class Stretch(Protocol):
    """What :func:`run_stretch` needs of a job."""

    fn: Callable[..., Any]
    codec: ArgumentCodec
    is_async: bool
    checkpoint_every: float


def run_stretch(
    job: Stretch, args: list[Any], kwargs: dict[str, Any], context: JobContext,
    message: JobMessage, *, chain: PerformContext, async_runner: AsyncRunner,
    stopping: threading.Event,
) -> Outcome:
    """Run an iterating job until it ends (ACK) or a checkpoint is due (CONTINUE): a stop
    was requested (``stopping``), or ``checkpoint_every`` seconds passed. The item running
    then finishes first; the continuation resumes after the last cursor yielded."""
    deadline = time.monotonic() + job.checkpoint_every

    def due() -> bool:
        return stopping.is_set() or time.monotonic() >= deadline

    if job.is_async:
        done, items, last = async_runner.run(
            _iterate_async(context, job.fn(*args, **kwargs), chain, due)
        )
    else:
        with chain.perform_context(context):
            done, items, last = _iterate_sync(job.fn(*args, **kwargs), due)
    if done:
        return Outcome(Action.ACK, Reason.SUCCEEDED, items=items)
    cursor = job.codec.encode_argument("cursor", last)
    log.info("%s %s checkpoint after %d item(s) at cursor %r (iteration %d)",
             context.job_name, context.job_id, items, cursor, context.iteration,
             extra={"job_id": context.job_id, "job_name": context.job_name,
                    "queue": context.queue, "items": items, "iteration": context.iteration})
    return Outcome(Action.CONTINUE, Reason.CHECKPOINT, items=items,
                   continuation=continuation(message, cursor))


def _iterate_sync(gen: Any, due: Callable[[], bool]) -> tuple[bool, int, Any]:
    """``(finished, items, last cursor)`` of a generator run until it ends or ``due()``."""
    items, last = 0, None
    try:
        for cursor in gen:
            items, last = items + 1, cursor
            if due():
                return False, items, last
        return True, items, last
    finally:
        gen.close()


async def _iterate_async(
    context: JobContext, agen: Any, chain: PerformContext, due: Callable[[], bool]
) -> tuple[bool, int, Any]:
    """:func:`_iterate_sync` for an async generator, in the event loop's task."""
    _current.set(context)
    items, last = 0, None
    with chain.perform_context(context):
        try:
            async for cursor in agen:
                items, last = items + 1, cursor
                if due():
                    return False, items, last
            return True, items, last
        finally:
            await agen.aclose()
