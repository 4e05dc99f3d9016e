"""Every row of DESIGN.md's "What the worker does with each message", against the emulator."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from google.cloud import pubsub_v1

from pubsub_jobs import Settings, enqueue_many
from pubsub_jobs.adapters.clients import publisher_client, subscriber_client
from pubsub_jobs.message import format_time
from pubsub_jobs.testing import publish_raw
from pubsub_jobs.worker import QueueSpec, Worker
from tests import jobs_core


@pytest.fixture
def core(bootstrap_queues, pubsub_jobs_settings: Settings) -> Settings:
    bootstrap_queues("core")
    return pubsub_jobs_settings


def names(ran):
    return Counter(name for name, _ in ran)


def test_success_is_acked_once(core, drain_queues, dead_letters, ran):
    jobs_core.add.enqueue(2, 3)
    worker = drain_queues("core")
    assert ran == [("add", 5)]
    assert worker.stats.processed == 1
    # acked: a second worker finds nothing, and nothing was dead-lettered
    drain_queues("core")
    assert ran == [("add", 5)]
    assert dead_letters("core") == []


def test_async_job_runs(core, drain_queues, ran):
    jobs_core.async_add.enqueue(20, 22)
    drain_queues("core")
    assert ran == [("async_add", 42)]


def test_typed_arguments_round_trip(core, drain_queues, ran):
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    uid = uuid.uuid4()
    address = jobs_core.Address(city="Kyoto", zip="600-8216")
    jobs_core.typed.enqueue(when, uid, Decimal("19.99"), jobs_core.Color.BLUE, address,
                            tags=["a", "b"])
    drain_queues("core")
    [(name, value)] = ran
    assert value == (when, uid, Decimal("19.99"), jobs_core.Color.BLUE, address, ["a", "b"])


def test_failure_with_attempts_left_is_retried(core, drain_queues, dead_letters, ran):
    jobs_core.flaky.enqueue("x")
    drain_queues("core")
    assert ran == [("flaky", 1), ("flaky", 2)]
    assert dead_letters("core") == []


def test_last_attempt_is_dead_lettered_with_reason(core, drain_queues, dead_letters, ran):
    result = jobs_core.always_fails.enqueue("y")
    worker = drain_queues("core")
    assert ran == [("always_fails", 1), ("always_fails", 2), ("always_fails", 3)]
    assert worker.stats.dead_lettered == 1
    [dead] = dead_letters("core", expect=1)
    assert dead.reason == "max_attempts"
    assert dead.job_id == result.job_id
    assert dead.attributes["dead_letter_error"] == "RuntimeError: boom y"
    assert dead.attributes["delivery_attempt"] == "3"
    assert dead.attributes["job_name"] == "tests.jobs_core.always_fails"
    datetime.fromisoformat(dead.attributes["dead_lettered_at"])
    assert dead.json() == {"args": ["y"], "kwargs": {}}


def test_discard_on_is_logged_and_acked(core, drain_queues, dead_letters, ran, caplog):
    caplog.set_level(logging.INFO, "pubsub_jobs")
    jobs_core.discarded.enqueue("z")
    drain_queues("core")
    assert ran == [("discarded", "z")]
    assert dead_letters("core") == []
    assert "the record was deleted" in caplog.text


def test_exception_outside_retry_on_is_not_retryable(core, drain_queues, dead_letters, ran):
    jobs_core.not_retryable.enqueue("w")
    drain_queues("core")
    assert ran == [("not_retryable", "w")]
    [dead] = dead_letters("core", expect=1)
    assert dead.reason == "not_retryable"
    assert dead.attributes["dead_letter_error"].startswith("KeyError")


def _attrs(**override: str) -> dict[str, str]:
    attrs = {
        "job_name": "tests.jobs_core.add",
        "job_id": str(uuid.uuid4()),
        "queue_name": "core",
        "enqueued_at": format_time(datetime.now(UTC)),
        "wire_version": "1",
    }
    attrs.update(override)
    return {k: v for k, v in attrs.items() if v != "<drop>"}


MALFORMED = [
    ("not json", b"not json", _attrs(), "invalid_message"),
    ("json array", b"[1, 2]", _attrs(), "invalid_message"),
    ("no kwargs", b'{"args": [1, 2]}', _attrs(), "invalid_message"),
    ("not utf-8", b"\xff\xfe{", _attrs(), "invalid_message"),
    ("missing job_id", b'{"args": [1, 2], "kwargs": {}}', _attrs(job_id="<drop>"),
     "invalid_message"),
    ("unknown version", b'{"args": [1, 2], "kwargs": {}}', _attrs(wire_version="2"),
     "invalid_message"),
    ("unknown job", b'{"args": [], "kwargs": {}}', _attrs(job_name="os.system"),
     "unknown_job"),
    ("bad arguments", b'{"args": ["x", 2], "kwargs": {}}', _attrs(), "invalid_arguments"),
    ("missing argument", b'{"args": [1], "kwargs": {}}', _attrs(), "invalid_arguments"),
]


def test_malformed_messages_are_dead_lettered_and_good_jobs_still_run(
    core, drain_queues, dead_letters, ran
):
    for label, data, attrs, _ in MALFORMED:
        publish_raw("core", data, {**attrs, "case": label})
    jobs_core.add.enqueue(1, 1)
    drain_queues("core")
    assert ran == [("add", 2)]
    dead = dead_letters("core", expect=len(MALFORMED))
    by_case = {d.attributes["case"]: d for d in dead}
    for label, data, attrs, reason in MALFORMED:
        copy = by_case[label]
        assert copy.data == data, label
        assert copy.reason == reason, label
        assert copy.attributes["dead_letter_error"], label
        for key, value in attrs.items():  # original attributes kept
            assert copy.attributes[key] == value, label


def test_unknown_job_is_never_imported(core, drain_queues, dead_letters, tmp_path):
    marker = tmp_path / "imported"
    publish_raw("core", json.dumps({"args": [f"touch {marker}"], "kwargs": {}}).encode(),
                _attrs(job_name="os.system"))
    drain_queues("core")
    assert not marker.exists()
    [dead] = dead_letters("core", expect=1)
    assert dead.reason == "unknown_job"


def test_failed_dead_letter_publish_nacks(core: Settings, caplog):
    """With the dead-letter topic gone, an invalid message is nacked, never acked."""
    publisher = publisher_client(core)
    publisher.delete_topic(topic=core.dead_letter_topic_path("core"))
    publish_raw("core", b"not json", _attrs())
    worker = Worker(["core"], settings=core)
    thread = threading.Thread(target=worker.run)
    thread.start()
    deadline = time.monotonic() + 20
    while worker.stats.processed < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    worker.request_stop()
    thread.join(30)
    assert worker.stats.processed >= 2  # redelivered: it was nacked each time
    # every attempt tried, no copy stored: counted as not stored, never as dead-lettered
    assert worker.stats.not_stored == worker.stats.processed
    assert worker.stats.dead_lettered == 0
    assert "nacking it so it is not lost" in caplog.text
    # the message is still in the worker subscription
    subscriber = subscriber_client(core)
    try:
        for _ in range(50):
            response = subscriber.pull(subscription=core.subscription_path("core"),
                                       max_messages=10, return_immediately=True)
            if response.received_messages:
                break
            time.sleep(0.2)
        assert [m.message.data for m in response.received_messages] == [b"not json"]
    finally:
        subscriber.close()


def _run_until(worker: Worker, condition, timeout: float = 40.0) -> None:
    thread = threading.Thread(target=worker.run)
    thread.start()
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.request_stop()
    thread.join(40)
    assert not thread.is_alive()


def test_stop_finishes_running_job_and_loses_none(core, ran):
    """A stop lets the running job finish and acks it; jobs not started run later, once.

    Messages the client had read but not started are nacked at once; those the emulator had
    pushed beyond flow control come back when their lease (``lease_seconds``, 60 s) runs out.
    """
    jobs_core.slow.enqueue(1.5)
    worker = Worker([QueueSpec("core", concurrency=1)], settings=core, shutdown_timeout=30)
    thread = threading.Thread(target=worker.run)
    thread.start()
    deadline = time.monotonic() + 20
    while ("slow-start", 1.5) not in ran and time.monotonic() < deadline:
        time.sleep(0.02)
    enqueue_many([jobs_core.add.message(i, 0) for i in range(5)])
    time.sleep(0.3)  # let the stream push them to us while slow runs
    worker.request_stop()
    thread.join(40)
    assert not thread.is_alive()
    assert ("slow-end", 1.5) in ran
    assert names(ran)["add"] == 0  # concurrency 1: none started while slow ran
    second = Worker([QueueSpec("core", concurrency=5)], settings=core)
    _run_until(second, lambda: names(ran)["add"] == 5, timeout=90)
    time.sleep(0.5)
    counts = names(ran)
    assert counts["add"] == 5
    assert counts["slow-start"] == 1  # acked on stop: never redelivered


def test_bulk_enqueue_runs_every_job_once(core, drain_queues, ran):
    results = jobs_core.add.enqueue_many([(i, 1000) for i in range(300)])
    assert len({r.job_id for r in results}) == 300
    drain_queues(QueueSpec("core", concurrency=20, streams=2))
    assert sorted(v for _, v in ran) == [i + 1000 for i in range(300)]


def test_missing_subscription_stops_the_worker_with_a_clear_error(pubsub_jobs_settings):
    worker = Worker(["nowhere"], settings=pubsub_jobs_settings)
    assert worker.run() is False
    assert "bootstrap --queue nowhere" in str(worker.error)


def test_every_missing_subscription_is_named_before_anything_starts(pubsub_jobs_settings,
                                                                   caplog):
    worker = Worker(["nowhere", "neither"], settings=pubsub_jobs_settings)
    with caplog.at_level(logging.INFO, "pubsub_jobs"):
        assert worker.run() is False
    assert "bootstrap --queue nowhere --queue neither" in str(worker.error)
    assert "worker started" not in caplog.text


def test_messages_published_by_any_client_run(core, drain_queues, ran):
    """Any publisher that writes wire format v1 enqueues a job (here: the raw client)."""
    client = pubsub_v1.PublisherClient()
    future = client.publish(core.topic_path("core"), b'{"args": [40, 2], "kwargs": {}}',
                            **_attrs())
    future.result(timeout=30)
    drain_queues("core")
    assert ran == [("add", 42)]


def test_an_unexpected_error_nacks_and_the_stream_goes_on(core, drain_queues, ran, caplog):
    """A bug outside the job (here a middleware) nacks that message; the rest still run."""
    from pubsub_jobs import Middleware

    class Broken(Middleware):
        def before_perform(self, context):  # type: ignore[no-untyped-def]
            if context.job_name.endswith("always_fails"):
                raise RuntimeError("a bug in a middleware")

    jobs_core.always_fails.enqueue("m")
    worker = drain_queues("core", middleware=[Broken()], idle=1.0)
    jobs_core.add.enqueue(2, 2)
    worker = drain_queues("core", middleware=[Broken()], idle=1.0)
    assert ("add", 4) in ran
    assert ("always_fails", 1) not in ran
    assert worker.error is None
    assert "a bug in a middleware" in caplog.text
