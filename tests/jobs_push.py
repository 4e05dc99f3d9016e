"""Jobs the push tests enqueue and push (what they did is recorded in :data:`RAN`), and
helpers to build and send push requests."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pubsub_jobs import Retry, current_job, job
from pubsub_jobs.context import JobContext
from pubsub_jobs.middleware import Middleware
from pubsub_jobs.outcome import Outcome

#: ``(job name, job_id, attempt, value)`` of every run, in order.
RAN: list[tuple[str, str, int, object]] = []
_lock = threading.Lock()
#: How many jobs run at once now, and the most seen (for the concurrency bound).
RUNNING = [0, 0]


def _record(name: str, value: object) -> None:
    context = current_job()
    with _lock:
        RAN.append((name, context.job_id, context.attempt, value))
        path = os.environ.get("JOBS_PUSH_RECORD")  # a push server in another process
        if path:
            with open(path, "a") as f:
                f.write(f"{name} {context.job_id} {context.attempt} {value}\n")


def runs(name: str | None = None) -> list[tuple[str, str, int, object]]:
    with _lock:
        return [r for r in RAN if name is None or r[0] == name]


@job(queue="push")
def greet(name: str) -> None:
    _record("greet", name)


@job(queue="push")
async def agreet(name: str) -> None:
    await asyncio.sleep(0)
    _record("agreet", name)


@job(queue="push", max_attempts=3)
def fail(tag: str) -> None:
    _record("fail", tag)
    raise RuntimeError(f"boom {tag}")


@job(queue="push", discard_on=(LookupError,))
def discard(tag: str) -> None:
    _record("discard", tag)
    raise KeyError(tag)


@job(queue="push")
def later(tag: str) -> None:
    _record("later", tag)
    raise Retry("not yet", delay=3600)


@job(queue="push")
def slow(tag: str, seconds: float = 0.3) -> None:
    with _lock:
        RUNNING[0] += 1
        RUNNING[1] = max(RUNNING)
    try:
        time.sleep(seconds)
    finally:
        with _lock:
            RUNNING[0] -= 1
    _record("slow", tag)


# Helpers the push tests share: building push requests and sending them.


def envelope(
    data: bytes,
    attributes: dict[str, str] | None = None,
    *,
    message_id: str | None = None,
    subscription: str = "projects/test-project/subscriptions/unused",
    delivery_attempt: int | None = None,
) -> bytes:
    """The body Pub/Sub would POST for a message."""
    body: dict[str, Any] = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes or {},
            "messageId": message_id or uuid.uuid4().hex,
            "publishTime": "2026-01-01T00:00:00Z",
        },
        "subscription": subscription,
    }
    if delivery_attempt is not None:
        body["deliveryAttempt"] = delivery_attempt
    return json.dumps(body).encode()


def job_envelope(job: Any, *args: Any, subscription: str = "projects/test-project/subscriptions"
                 "/unused", delivery_attempt: int | None = None, **kwargs: Any) -> bytes:
    """A push body for a call of ``job``."""
    data, attributes = job.message(*args, **kwargs).encode()
    return envelope(data, attributes, subscription=subscription,
                    delivery_attempt=delivery_attempt)


def post(
    base_url: str,
    path: str,
    body: bytes = b"",
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    chunked: bool = False,
) -> tuple[int, bytes]:
    """Send one request to a server of ours on 127.0.0.1; returns (status, body)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    try:
        if chunked:
            sent["Transfer-Encoding"] = "chunked"
            conn.putrequest(method, path)
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders()
            step = 1 << 20
            try:
                for start in range(0, len(body), step):
                    piece = body[start:start + step]
                    conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                conn.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered (413) before taking it all
        else:
            sent.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Recorder(Middleware):
    """Middleware that records the hooks it saw, to show push runs them as the worker does."""

    seen: list[tuple[str, str]] = []

    def before_perform(self, context: JobContext) -> None:
        Recorder.seen.append(("before", context.job_name))

    def after_perform(self, context: JobContext, outcome: Outcome) -> None:
        Recorder.seen.append(("after", outcome.reason.value))

    def on_rejected(self, queue: str, attributes: Mapping[str, str], outcome: Outcome) -> None:
        Recorder.seen.append(("rejected", outcome.reason.value))
