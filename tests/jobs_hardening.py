"""Jobs that misbehave, for tests/emulator/test_hardening.py (queue "hard")."""

from __future__ import annotations

import sys
import threading
import time
from typing import Annotated, Any

from pydantic import BeforeValidator

from pubsub_jobs import Middleware, current_job, job
from pubsub_jobs.context import JobContext
from pubsub_jobs.outcome import Outcome

RAN: list[tuple[str, object]] = []
_lock = threading.Lock()


def record(name: str, value: object = None) -> None:
    with _lock:
        RAN.append((name, value))


@job(queue="hard", max_attempts=1)
def exits() -> None:
    record("exits", current_job().attempt)
    sys.exit(2)  # what argparse or click do inside a job


@job(queue="hard", max_attempts=1)
def interrupts() -> None:
    record("interrupts", current_job().attempt)
    raise KeyboardInterrupt


@job(queue="hard", max_attempts=1)
async def async_exits() -> None:
    record("async_exits", current_job().attempt)
    raise SystemExit(3)


@job(queue="hard", max_attempts=1)
async def async_interrupts() -> None:
    record("async_interrupts", current_job().attempt)
    raise KeyboardInterrupt


@job(queue="hard")
async def async_ok(n: int) -> None:
    record("async_ok", n)


@job(queue="hard")
def slow_ok(n: int) -> None:
    time.sleep(1.0)
    record("slow_ok", n)


@job(queue="hard")
def charge(n: int) -> None:
    record("charge", n)


def _explode(value: Any) -> Any:
    raise LookupError("the validator looked something up and failed")


@job(queue="hard")
def validated(value: Annotated[str, BeforeValidator(_explode)]) -> None:
    record("validated", value)


class RaisingAfterPerform(Middleware):
    """after_perform raises for every job: the job ran, so it must be acked all the same."""

    def __init__(self) -> None:
        self.before = 0
        self.after = 0

    def before_perform(self, context: JobContext) -> None:
        self.before += 1

    def after_perform(self, context: JobContext, outcome: Outcome) -> None:
        self.after += 1
        raise RuntimeError("metrics backend unavailable")


@job(queue="hard")
def holds_the_gil(seconds: int) -> None:
    """Like a backtracking regex or a C extension: no other Python thread runs meanwhile."""
    import ctypes

    ctypes.PyDLL(None).sleep(seconds)  # PyDLL keeps the GIL during the call
    record("holds_the_gil", seconds)
