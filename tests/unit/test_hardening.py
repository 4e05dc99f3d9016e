"""What a job or a message can do to the worker, checked without a worker: NaN and infinity
refused at enqueue, logs that escape what a message carries, task names of reschedules, and
the schema and the worker agreeing on times (the worker itself: tests/emulator/)."""

from __future__ import annotations

import json
import logging
import math

import pytest

from pubsub_jobs import InvalidArguments
from pubsub_jobs.middleware.logging import TextFormatter


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_at_enqueue(value):
    """Item 10: no non-JSON token is ever written, and Any does not turn NaN into null."""
    from pubsub_jobs import job

    @job(name="tests.hardening.floats")
    def floats(x: float, y: object = None, z: list[float] | None = None) -> None: ...

    for call in ({"x": value}, {"x": 1.0, "y": {"deep": [value]}}, {"x": 1.0, "z": [value]}):
        with pytest.raises(InvalidArguments, match="NaN or Infinity"):
            floats.message(**call)


def test_text_logs_escape_what_a_message_carries():
    """Item 11: a job id with a newline cannot forge a log line; escapes reach no terminal."""
    record = logging.LogRecord("pubsub_jobs.worker", logging.WARNING, __file__, 1,
                               "job %s failed", ("abc\n2026-01-01 INFO forged: \x1b[2J",), None)
    line = TextFormatter().format(record)
    assert "\n" not in line and "\x1b" not in line
    assert "abc\\n2026-01-01 INFO forged: \\x1b[2J" in line


def test_a_reschedule_never_reuses_an_earlier_task_name():
    """Item 6: a job retried from the dead set starts its attempts afresh; its next long-wait
    retry must not get the task name of its first one (Cloud Tasks would answer
    AlreadyExists, counted as success, and the job would be gone). Redeliveries of one
    message still map to one name, so a retried reschedule does not schedule twice."""
    from datetime import timedelta

    from pubsub_jobs.adapters.cloud_tasks import task_id
    from pubsub_jobs.message import JobMessage
    from pubsub_jobs.outcome import Action, Outcome, Reason, rescheduled

    job = JobMessage(job_name="j", queue="hard", args=[], kwargs={}, job_id="same-id")
    retry = Outcome(Action.RESCHEDULE, Reason.RETRY, delay=timedelta(minutes=5), attempt=1)
    first = rescheduled(job, retry, "message-1")
    again = rescheduled(job, retry, "message-1")        # the same delivery, redelivered
    after_dead_retry = rescheduled(job, retry, "message-7")  # republished from the dead set
    topic = "projects/p/topics/jobs-hard"
    assert task_id(topic, first) == task_id(topic, again)
    assert task_id(topic, first) != task_id(topic, after_dead_retry)


@pytest.mark.parametrize("when,accepted", [
    ("2026-01-02T03:04:05Z", True), ("2026-01-02T03:04:05+00:00", True),
    ("2026-01-02T12:04:05+09:00", True), ("2026-01-02T03:04:05.123456789Z", True),
    ("2026-01-02T03:04:05", False), ("20260102T030405Z", False), ("2026-01-02", False),
])
def test_the_schema_and_the_worker_agree_on_times(when, accepted):
    import jsonschema

    from pubsub_jobs import InvalidMessage
    from pubsub_jobs.message import JobMessage, schema

    attributes = {"job_name": "j", "job_id": "1", "queue_name": "q", "enqueued_at": when,
                  "wire_version": "1"}
    data = {"args": [], "kwargs": {}}
    schema_ok = jsonschema.Draft202012Validator(schema()).is_valid(
        {"data": data, "attributes": attributes})
    try:
        JobMessage.decode(json.dumps(data).encode(), attributes)
        worker_ok = True
    except InvalidMessage:
        worker_ok = False
    assert schema_ok == worker_ok == accepted


