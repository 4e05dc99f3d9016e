"""OpenTelemetry tracing across the queue (extra ``opentelemetry``).

On enqueue, a PRODUCER span ``<job_name> publish`` starts as a child of whatever span is
current (the web request that enqueued, say), and its W3C trace context travels in the
message attributes ``traceparent`` (and ``tracestate`` when there is one). In the worker,
a CONSUMER span ``<job_name> process`` continues that trace as the producer span's child and
is the current span while the job runs, in sync jobs and inside ``async`` ones, so spans the
job starts (HTTP calls, database queries, further enqueues) nest under it. Failures are
recorded on the span (``record_exception``, status ERROR); a discarded job records its
exception but keeps an unset status. A message rejected before a job could run
(``invalid_message``, ``unknown_job``, ``invalid_arguments``) gets a CONSUMER span
``<queue> process`` with status ERROR, in the producer's trace when it carried one.

The middleware uses the global tracer provider unless given one, so configure the SDK
(``opentelemetry-sdk`` and an exporter, e.g. ``opentelemetry-exporter-gcp-trace``) as for
any other instrumentation; without an SDK every span is a no-op.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import trace
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:
    raise ImportError(
        "pubsub_jobs.middleware.opentelemetry needs the opentelemetry extra: "
        "pip install 'pubsub-jobs[opentelemetry]'"
    ) from exc

from pubsub_jobs.errors import describe
from pubsub_jobs.middleware import Middleware

if TYPE_CHECKING:
    from pubsub_jobs.context import JobContext
    from pubsub_jobs.message import EnqueuedJob, JobMessage
    from pubsub_jobs.outcome import Outcome

__all__ = ["MESSAGING_SYSTEM", "OpenTelemetry"]

#: ``messaging.system`` of Google Cloud Pub/Sub in OpenTelemetry's semantic conventions.
MESSAGING_SYSTEM = "gcp_pubsub"

#: Longest value taken from an unchecked message attribute onto a span.
_MAX_UNTRUSTED = 256


class OpenTelemetry(Middleware):
    """Propagates trace context through messages and traces enqueue and perform.

    ``tracer_provider``: default the global one (set with ``trace.set_tracer_provider``).
    ``propagator``: default W3C Trace Context, which writes only ``traceparent`` and
    ``tracestate``; pass another ``TextMapPropagator`` to carry more (mind Pub/Sub's limits
    of 100 attributes of at most 1024 bytes).

    The consumer span starts in ``before_perform`` (the worker thread), becomes current in
    ``perform_context`` (the job's own thread or event-loop task, so ``async`` jobs see it)
    and ends in ``after_perform`` with the outcome. Spans in progress are kept by job
    (``id`` of its context, or its job id on enqueue), since one instance serves every
    thread.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self.tracer = trace.get_tracer("pubsub_jobs", _version(), tracer_provider)
        self.propagator = propagator or TraceContextTextMapPropagator()
        self._lock = threading.Lock()
        self._producing: dict[str, list[Span]] = {}
        self._consuming: dict[int, Span] = {}

    def before_enqueue(self, message: JobMessage) -> JobMessage:
        span = self.tracer.start_span(
            f"{message.job_name} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": message.queue,
                "pubsub_jobs.job_id": message.job_id,
                "pubsub_jobs.job_name": message.job_name,
            },
        )
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier, context=trace.set_span_in_context(span))
        with self._lock:
            self._producing.setdefault(message.job_id, []).append(span)
        return replace(message, attributes={**message.attributes, **carrier})

    def after_enqueue(
        self, message: JobMessage, result: EnqueuedJob | None, error: BaseException | None
    ) -> None:
        with self._lock:
            spans = self._producing.get(message.job_id)
            span = spans.pop() if spans else None
            if spans is not None and not spans:
                del self._producing[message.job_id]
        if span is None:
            return
        if result is not None and result.message_id:
            span.set_attribute("messaging.message.id", result.message_id)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, describe(error)))
        span.end()

    def before_perform(self, context: JobContext) -> None:
        attributes: dict[str, Any] = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": context.queue,
            "pubsub_jobs.job_id": context.job_id,
            "pubsub_jobs.job_name": context.job_name,
            "pubsub_jobs.attempt": context.attempt,
        }
        if context.message_id:
            attributes["messaging.message.id"] = context.message_id
        span = self.tracer.start_span(
            f"{context.job_name} process",
            context=self.propagator.extract(context.attributes),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        with self._lock:
            self._consuming[id(context)] = span

    def perform_context(self, context: JobContext) -> AbstractContextManager[object]:
        with self._lock:
            span = self._consuming.get(id(context))
        if span is None:
            return nullcontext()
        return trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def after_perform(self, context: JobContext, outcome: Outcome) -> None:
        with self._lock:
            span = self._consuming.pop(id(context), None)
        if span is None:
            return
        _finish(span, outcome)

    def on_rejected(self, queue: str, attributes: Mapping[str, str], outcome: Outcome) -> None:
        span_attributes: dict[str, Any] = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": queue,
        }
        for key in ("job_id", "job_name"):
            value = attributes.get(key)
            if value:
                span_attributes[f"pubsub_jobs.{key}"] = value[:_MAX_UNTRUSTED]
        span = self.tracer.start_span(
            f"{queue} process",
            context=self.propagator.extract(attributes),
            kind=SpanKind.CONSUMER,
            attributes=span_attributes,
        )
        _finish(span, outcome)


def _finish(span: Span, outcome: Outcome) -> None:
    span.set_attribute("pubsub_jobs.outcome", outcome.reason.value)
    if outcome.error is not None:
        span.record_exception(outcome.error)
    if outcome.failed and outcome.error is not None:
        span.set_status(Status(StatusCode.ERROR, describe(outcome.error)))
    span.end()


def _version() -> str | None:
    """The installed distribution's version, for the tracer (None when not installed)."""
    try:
        return importlib.metadata.version("pubsub-jobs")
    except importlib.metadata.PackageNotFoundError:
        return None
