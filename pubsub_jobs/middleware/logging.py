"""Structured logging: one record per job, and JSON lines for Cloud Logging.

:class:`StructuredLogging` logs every performed job once, on the ``pubsub_jobs.jobs`` logger,
with the fields ``job_id``, ``job_name``, ``queue``, ``attempt``, ``duration`` (seconds) and
``outcome`` (a :class:`~pubsub_jobs.perform.Reason` value such as ``succeeded``,
``retry`` or ``max_attempts``) as ``extra``, so any formatter or handler can use them.
:class:`JsonFormatter` writes each record as one JSON line that Cloud Logging (Cloud Run,
GKE) reads as a structured entry: ``severity``, ``message``, ``time``, the extra fields,
and a ``stack_trace`` that Error Reporting picks up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pubsub_jobs.context import _current_context
from pubsub_jobs.errors import describe
from pubsub_jobs.middleware import Middleware
from pubsub_jobs.outcome import Action, job_fields

if TYPE_CHECKING:
    from pubsub_jobs.context import JobContext
    from pubsub_jobs.message import EnqueuedJob, JobMessage
    from pubsub_jobs.outcome import Outcome

__all__ = ["JsonFormatter", "StructuredLogging", "job_fields"]

#: Longest value taken from an unchecked message attribute into a log record.
_MAX_UNTRUSTED = 256


class StructuredLogging(Middleware):
    """Logs each performed job once: INFO when it succeeded or was discarded, WARNING when it
    will be retried, ERROR when it was dead-lettered; rejected messages (invalid, unknown
    job, bad arguments) at ERROR too, and enqueues at DEBUG.

    The worker's own warnings (``pubsub_jobs.worker``, with tracebacks) stay as they are;
    this adds the one record per job that dashboards and log-based metrics count.
    """

    def __init__(self, logger: logging.Logger | str = "pubsub_jobs.jobs") -> None:
        self.log = logging.getLogger(logger) if isinstance(logger, str) else logger

    def after_enqueue(
        self, message: JobMessage, result: EnqueuedJob | None, error: BaseException | None
    ) -> None:
        fields: dict[str, Any] = {
            "job_id": message.job_id,
            "job_name": message.job_name,
            "queue": message.queue,
            "outcome": "enqueued" if error is None else "enqueue_failed",
        }
        if error is not None:
            fields["error"] = describe(error)
            self.log.warning("%s %s could not be enqueued on %s: %s", message.job_name,
                             message.job_id, message.queue, fields["error"], extra=fields)
        elif self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("%s %s enqueued on %s", message.job_name, message.job_id,
                           message.queue, extra=fields)

    def after_perform(self, context: JobContext, outcome: Outcome) -> None:
        fields = job_fields(context, outcome)
        if outcome.action is Action.DEAD_LETTER:
            level = logging.ERROR
        elif outcome.action is Action.ACK:
            level = logging.INFO
        else:
            level = logging.WARNING
        if not self.log.isEnabledFor(level):
            return
        detail = f": {fields['error']}" if "error" in fields else ""
        # "retry (ran 0.001s)": the figure is how long the job ran, not a wait before retrying
        self.log.log(level, "%s %s attempt %d/%d: %s (ran %.3fs)%s", context.job_name,
                     context.job_id, context.attempt, context.max_attempts,
                     outcome.reason.value, outcome.duration, detail, extra=fields)

    def on_rejected(self, queue: str, attributes: Mapping[str, str], outcome: Outcome) -> None:
        fields: dict[str, Any] = {
            "job_id": _untrusted(attributes.get("job_id")),
            "job_name": _untrusted(attributes.get("job_name")),
            "queue": queue,
            "attempt": None,
            "duration": round(outcome.duration, 6),
            "outcome": outcome.reason.value,
            "error": describe(outcome.error) if outcome.error is not None else None,
        }
        self.log.error("message rejected on %s (%s): %s", queue, outcome.reason.value,
                       fields["error"], extra=fields)


def _untrusted(value: str | None) -> str | None:
    return None if value is None else value[:_MAX_UNTRUSTED]


#: Attributes every LogRecord has; anything else on a record came as ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}

_SEVERITIES = ((logging.CRITICAL, "CRITICAL"), (logging.ERROR, "ERROR"),
               (logging.WARNING, "WARNING"), (logging.INFO, "INFO"), (logging.DEBUG, "DEBUG"))


def severity(levelno: int) -> str:
    """Cloud Logging's severity for a ``logging`` level (custom levels round down)."""
    for number, name in _SEVERITIES:
        if levelno >= number:
            return name
    return "DEFAULT"


class TextFormatter(logging.Formatter):
    """Plain text, one line per record: control characters in the message (a newline in a
    job id a message carried, an escape sequence) are written escaped, so nothing a message
    says can forge a log line or reach the operator's terminal raw. Tracebacks stay
    multi-line, as Python writes them."""

    def __init__(self, fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s") -> None:
        super().__init__(fmt)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's API
        record.message = escape_control(record.message)
        return super().formatMessage(record)


def escape_control(text: str) -> str:
    """``text`` with control characters (newlines, escape sequences, ...) written as
    Python escapes, and nothing else changed."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, in the shape Cloud Logging reads from stdout/stderr.

    Keys: ``severity``, ``message``, ``time`` (RFC 3339), ``logger``, every ``extra`` field
    of the record, ``stack_trace`` when there is an exception, and
    ``logging.googleapis.com/sourceLocation``. A record logged while a job runs (by the job
    itself, say) gets that job's ``job_id`` and ``job_name`` unless it has its own.
    Values that are not JSON become strings.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": severity(record.levelno),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace(
                "+00:00", "Z"
            ),
            "logger": record.name,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if "job_id" not in entry:
            current = _current_context()
            if current is not None:
                entry["job_id"] = current.job_id
                entry["job_name"] = current.job_name
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack_trace"] = self.formatStack(record.stack_info)
        entry["logging.googleapis.com/sourceLocation"] = {
            "file": record.pathname,
            "line": record.lineno,
            "function": record.funcName,
        }
        return json.dumps(entry, default=str, ensure_ascii=False)
