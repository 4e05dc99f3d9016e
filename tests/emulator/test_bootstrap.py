"""bootstrap creates DESIGN.md's topology idempotently and reports drift, on the emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pubsub_jobs import QueueOptions, Settings, TopologyDrift
from pubsub_jobs.adapters.clients import publisher_client, subscriber_client
from pubsub_jobs.admin.topology import bootstrap


def test_creates_the_documented_topology(pubsub_jobs_settings: Settings, bootstrap_queues):
    s = pubsub_jobs_settings
    report = bootstrap_queues("mailers")
    p = f"projects/{s.require_project()}"
    prefix = s.prefix
    assert sorted(report.created) == sorted([
        f"{p}/topics/{prefix}mailers",
        f"{p}/topics/{prefix}mailers-dead-letter",
        f"{p}/subscriptions/{prefix}mailers-worker",
        f"{p}/subscriptions/{prefix}mailers-dead-letter",
    ])
    subscriber = subscriber_client(s)
    try:
        worker = subscriber.get_subscription(
            subscription=f"{p}/subscriptions/{prefix}mailers-worker")
        assert worker.topic == f"{p}/topics/{prefix}mailers"
        policy = worker.dead_letter_policy
        assert policy.dead_letter_topic == f"{p}/topics/{prefix}mailers-dead-letter"
        assert worker.dead_letter_policy.max_delivery_attempts == 5
        assert worker.ack_deadline_seconds == 60
        dead = subscriber.get_subscription(
            subscription=f"{p}/subscriptions/{prefix}mailers-dead-letter")
        assert dead.topic == f"{p}/topics/{prefix}mailers-dead-letter"
    finally:
        subscriber.close()


def test_default_names_and_policies():
    """The contract's defaults: prefix jobs-, 5 attempts, backoff 10 s to 600 s."""
    s = Settings(project_id="p")
    assert s.topic_path("Q") == "projects/p/topics/jobs-Q"
    assert s.subscription_path("Q") == "projects/p/subscriptions/jobs-Q-worker"
    assert s.dead_letter_topic_path("Q") == "projects/p/topics/jobs-Q-dead-letter"
    assert s.dead_letter_subscription_path("Q") == "projects/p/subscriptions/jobs-Q-dead-letter"
    options = s.queue_options("Q")
    assert options.max_delivery_attempts == 5
    assert options.min_retry_backoff == timedelta(seconds=10)
    assert options.max_retry_backoff == timedelta(seconds=600)


def test_is_idempotent(pubsub_jobs_settings: Settings, bootstrap_queues):
    bootstrap_queues("default")
    again = bootstrap(["default"], pubsub_jobs_settings)
    assert again.created == [] and again.drift == {}
    assert len(again.existing) == 4


def test_reports_drift_and_updates_on_request(pubsub_jobs_settings: Settings, bootstrap_queues):
    bootstrap_queues("default")
    changed = pubsub_jobs_settings.model_copy(update={
        "queues": {"default": QueueOptions(max_delivery_attempts=7,
                                           min_retry_backoff=timedelta(seconds=1),
                                           max_retry_backoff=timedelta(seconds=60))}
    })
    report = bootstrap(["default"], changed)
    [(name, diffs)] = report.drift.items()
    assert name == changed.subscription_path("default")
    text = "\n".join(diffs)
    assert "max 5" in text and "max 7" in text
    assert "retry_policy" in text
    with pytest.raises(TopologyDrift, match="max 7") as info:
        report.raise_for_drift()
    assert info.value.differences
    # the existing subscription was left as it was
    assert bootstrap(["default"], pubsub_jobs_settings).drift == {}

    updated = bootstrap(["default"], changed, update=True)
    assert updated.updated == [changed.subscription_path("default")]
    assert bootstrap(["default"], changed).drift == {}


def test_recreated_topic_is_not_drift(pubsub_jobs_settings: Settings, bootstrap_queues):
    """A deleted dead-letter topic is created again on the next bootstrap."""
    bootstrap_queues("default")
    publisher = publisher_client(pubsub_jobs_settings)
    publisher.delete_topic(topic=pubsub_jobs_settings.dead_letter_topic_path("default"))
    report = bootstrap(["default"], pubsub_jobs_settings)
    assert report.created == [pubsub_jobs_settings.dead_letter_topic_path("default")]
