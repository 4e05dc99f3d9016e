"""Jobs the core tests enqueue; effects are recorded in memory (and a file, for subprocesses)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path

from pydantic import BaseModel

from pubsub_jobs import current_job, job

RAN: list[tuple[str, object]] = []
_lock = threading.Lock()


def record(name: str, value: object) -> None:
    with _lock:
        RAN.append((name, value))
    path = os.environ.get("JOBS_CORE_RECORD")
    if path:
        with Path(path).open("a") as f:
            f.write(f"{name} {current_job().job_id} {value}\n")


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str
    zip: str


@job(queue="core")
def add(a: int, b: int) -> None:
    record("add", a + b)


@job(queue="core")
def typed(
    when: datetime, uid: uuid.UUID, amount: Decimal, color: Color, address: Address,
    *, tags: list[str] | None = None,
) -> None:
    record("typed", (when, uid, amount, color, address, tags))


@job(queue="core")
async def async_add(a: int, b: int) -> None:
    await asyncio.sleep(0.01)
    record("async_add", a + b)


@job(queue="core", max_attempts=3)
def always_fails(tag: str) -> None:
    record("always_fails", current_job().attempt)
    raise RuntimeError(f"boom {tag}")


@job(queue="core")
def flaky(tag: str) -> None:
    attempt = current_job().attempt
    record("flaky", attempt)
    if attempt < 2:
        raise ConnectionError("try again")


class Gone(Exception):
    pass


@job(queue="core", discard_on=(Gone,))
def discarded(tag: str) -> None:
    record("discarded", tag)
    raise Gone("the record was deleted")


@job(queue="core", retry_on=(ConnectionError,))
def not_retryable(tag: str) -> None:
    record("not_retryable", tag)
    raise KeyError("a bug, not a hiccup")


@job(queue="core")
def slow(seconds: float) -> None:
    record("slow-start", seconds)
    time.sleep(seconds)
    record("slow-end", seconds)
