"""Enqueue against the emulator: confirmation, bulk, and errors that say what to do."""

from __future__ import annotations

import socket
import time

import pytest

from pubsub_jobs import (
    BulkEnqueueError,
    EnqueueError,
    PubSubAdapter,
    Settings,
    TopicNotFound,
    enqueue_many,
)
from pubsub_jobs.adapters.clients import subscriber_client
from pubsub_jobs.message import JobMessage
from tests import jobs_core


def test_enqueue_publishes_wire_format(pubsub_jobs_settings, bootstrap_queues):
    bootstrap_queues("core")
    result = jobs_core.add.enqueue(1, 2)
    assert result.message_id and result.queue == "core"
    subscriber = subscriber_client(pubsub_jobs_settings)
    try:
        response = subscriber.pull(subscription=pubsub_jobs_settings.subscription_path("core"),
                                   max_messages=1, return_immediately=True)
        [received] = response.received_messages
        message = JobMessage.decode(received.message.data, received.message.attributes)
        assert (message.job_id, message.args) == (result.job_id, [1, 2])
    finally:
        subscriber.close()


def test_missing_topic_names_it_and_the_fix(pubsub_jobs_settings):
    with pytest.raises(TopicNotFound) as info:
        jobs_core.add.enqueue(1, 2)
    text = str(info.value)
    assert pubsub_jobs_settings.topic_path("core") in text
    assert "pubsub-jobs bootstrap --queue core" in text


def test_bulk_enqueue_reports_what_failed(pubsub_jobs_settings, bootstrap_queues):
    bootstrap_queues("core")
    good = [jobs_core.add.message(i, i) for i in range(3)]
    bad = jobs_core.add.using(queue="nowhere").message(9, 9)
    with pytest.raises(BulkEnqueueError) as info:
        enqueue_many([*good, bad])
    assert {j.job_id for j in info.value.enqueued} == {m.job_id for m in good}
    [(failed, _)] = info.value.failed
    assert failed.job_id == bad.job_id
    assert "1 of 4 jobs were not enqueued" in str(info.value)


def test_adapter_client_is_created_once_and_shared(pubsub_jobs_settings, bootstrap_queues):
    bootstrap_queues("core")
    adapter = PubSubAdapter(pubsub_jobs_settings)
    jobs_core.add.using(adapter=adapter).enqueue(1, 1)
    client = adapter.publisher
    jobs_core.add.using(adapter=adapter).enqueue(2, 2)
    assert adapter.publisher is client
    adapter.close()


def test_enqueue_during_an_outage_fails_within_seconds_saying_what_to_do() -> None:
    with socket.socket() as sock:  # a port nothing answers on: Pub/Sub is down
        sock.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{sock.getsockname()[1]}"
    adapter = PubSubAdapter(Settings(project_id="p", pubsub_emulator_host=host), middleware=[])
    try:
        started = time.monotonic()
        with pytest.raises(EnqueueError) as info:
            jobs_core.add.using(adapter=adapter).enqueue(1, 2)
        assert time.monotonic() - started < 15
        text = str(info.value)
        assert "after retries" in text and "not enqueued" in text and "same job_id" in text
        messages = [jobs_core.add.message(i, i) for i in range(3)]
        with pytest.raises(BulkEnqueueError) as bulk:
            adapter.publish_many(messages)
        assert bulk.value.enqueued == []
        assert [m.job_id for m, _ in bulk.value.failed] == [m.job_id for m in messages]
    finally:
        adapter.close()

