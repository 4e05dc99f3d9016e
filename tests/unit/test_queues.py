"""Queues declared in code: validation, the registry, and merging with the settings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest

import pubsub_jobs
from pubsub_jobs import queues
from pubsub_jobs.admin.terraform_vars import terraform_vars
from pubsub_jobs.admin.topology import QueueTopology
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.queues import Queue, QueueOptions, QueueRegistry, build_queue, queue
from pubsub_jobs.settings import Settings, describe_queue


@pytest.fixture(autouse=True)
def declared() -> Iterator[QueueRegistry]:
    """The application's registry, emptied of what each test declares."""
    before = {q.name for q in queues.declared_queues}
    yield queues.declared_queues
    for q in list(queues.declared_queues):
        if q.name not in before:
            queues.declared_queues.remove(q.name)
    queues._conflicts_told.clear()


def test_queue_is_public_and_returns_a_frozen_value() -> None:
    declared = pubsub_jobs.queue("billing", ordered=True, max_delivery_attempts=10)
    assert isinstance(declared, pubsub_jobs.Queue)
    assert declared.ordered and not declared.exactly_once and declared.rate_limit is None
    assert declared.declared_policies() == {"max_delivery_attempts": 10}
    assert declared.origin.startswith("queue() at ") and "test_queues.py:" in declared.origin
    with pytest.raises(AttributeError):
        declared.ordered = False  # type: ignore[misc]
    assert queues.declared_queue("billing") is declared


def test_design_names_for_backoff_and_the_settings_names_too() -> None:
    a = build_queue("a", policies={"min_retry_backoff": 1, "max_retry_backoff": 30})
    b = queue("b", min_backoff=timedelta(seconds=1), max_backoff=30)
    c = queue("c", min_retry_backoff=1, max_retry_backoff=timedelta(seconds=30))
    assert a.policies == b.policies == c.policies
    assert b.declared_policies() == {"min_retry_backoff": timedelta(seconds=1),
                                     "max_retry_backoff": timedelta(seconds=30)}
    with pytest.raises(ConfigurationError, match="give min_backoff or min_retry_backoff"):
        queue("d", min_backoff=1, min_retry_backoff=1)


@pytest.mark.parametrize(("call", "sentence"), [
    (lambda: queue("bad name"), "queue name 'bad name' is not 1 to 200 letters"),
    (lambda: queue(""), "queue name '' is not"),
    (lambda: queue("workers"), "'workers' is taken"),
    (lambda: queue("q", rate_limit=0), r"rate_limit=0 is out of range: above 0 and at most 500"),
    (lambda: queue("q", rate_limit=501), "at most 500 jobs a second"),
    (lambda: queue("q", rate_limit=True), "rate_limit is a number"),
    (lambda: queue("q.x", rate_limit=5), "only letters, digits and hyphens"),
    (lambda: queue("q", ordered="yes"), "ordered is True or False"),  # type: ignore[arg-type]
    (lambda: queue("q", max_delivery_attempts=3), "max_delivery_attempts=3: Input should be "
                                                  "greater than or equal to 5"),
    (lambda: queue("q", ack_deadline_seconds=601), "ack_deadline_seconds=601"),
    (lambda: queue("q", max_backoff=700), "max_backoff=700: a retry backoff is between 0 and "
                                          "600 seconds"),
    (lambda: queue("q", message_retention=60), "between 10 minutes and 7 days"),
    (lambda: queue("q", min_backoff=60, max_backoff=10), "min_backoff \\(60 s\\) is above "
                                                         "max_backoff \\(10 s\\)"),
])
def test_bad_declarations_are_refused_with_a_sentence(call: object, sentence: str) -> None:
    with pytest.raises(ConfigurationError, match=sentence):
        call()  # type: ignore[operator]
    assert "q" not in queues.declared_queues


def test_rate_limit_at_the_maximum_and_fractional() -> None:
    assert queue("fast", rate_limit=500).rate_limit == 500.0
    assert queue("slow", rate_limit=0.5).describe() == "rate_limit 0.5/s"


def test_declared_twice_the_same_is_fine_differently_refused() -> None:
    first = queue("billing", ordered=True)
    assert queue("billing", ordered=True) == first
    with pytest.raises(ConfigurationError) as caught:
        queue("billing", ordered=True, exactly_once=True)
    text = str(caught.value)
    assert "queue 'billing' is declared twice, differently" in text
    assert "queue('billing', ordered=True)" in text
    assert "queue('billing', ordered=True, exactly_once=True)" in text
    assert text.count("test_queues.py:") == 2
    assert queues.declared_queue("billing") == first


def test_own_registry_keeps_the_application_s_apart() -> None:
    mine = QueueRegistry()
    queue("private", ordered=True, registry=mine)
    assert [q.name for q in mine] == ["private"]
    assert "private" not in queues.declared_queues


def test_no_declaration_leaves_the_settings_as_they_were() -> None:
    settings = Settings(project_id="p", queue_defaults=QueueOptions(ack_deadline_seconds=30),
                        queues={"mailers": QueueOptions(max_delivery_attempts=9)})
    assert settings.queue_options("mailers") == QueueOptions(max_delivery_attempts=9)
    assert settings.queue_options("other") == QueueOptions(ack_deadline_seconds=30)
    sources = settings.queue_option_sources("mailers")
    assert sources["max_delivery_attempts"] == "PUBSUB_JOBS_QUEUES"
    assert sources["ack_deadline_seconds"] == "the default"
    assert settings.queue_option_sources("other")["ack_deadline_seconds"] == (
        "PUBSUB_JOBS_QUEUE_DEFAULTS")
    assert "not declared in code" in describe_queue(settings, "other")


def test_declaration_wins_over_the_settings_and_the_rest_comes_from_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    declared = queue("billing", ordered=True, max_delivery_attempts=10, min_backoff=1)
    settings = Settings(project_id="p", queue_defaults=QueueOptions(ack_deadline_seconds=30),
                        queues={"billing": QueueOptions(max_delivery_attempts=7,
                                                        message_retention=timedelta(hours=1))})
    with caplog.at_level(logging.WARNING, logger="pubsub_jobs.queues"):
        options = settings.queue_options("billing")
        settings.queue_options("billing")  # told once
    assert options.max_delivery_attempts == 10
    assert options.min_retry_backoff == timedelta(seconds=1)
    assert options.message_retention == timedelta(hours=1)
    assert options.ack_deadline_seconds == 60  # an entry replaces queue_defaults, as before
    (record,) = caplog.records
    assert record.getMessage() == (
        f"queue 'billing': max_delivery_attempts is 10 in {declared.origin} but 7 in "
        "PUBSUB_JOBS_QUEUES; the declaration in code wins (remove it from the setting, or "
        "change the declaration)")
    sources = settings.queue_option_sources("billing")
    assert sources["max_delivery_attempts"] == declared.origin
    assert sources["message_retention"] == "PUBSUB_JOBS_QUEUES"
    text = describe_queue(settings, "billing")
    assert text.startswith(f"queue 'billing': ordered (from {declared.origin}); ")
    assert f"max_delivery_attempts 10 (from {declared.origin})" in text
    assert "min_retry_backoff 1s" in text and "message_retention 3600s" in text


def test_a_setting_that_agrees_is_no_conflict(caplog: pytest.LogCaptureFixture) -> None:
    queue("billing", max_delivery_attempts=10)
    settings = Settings(project_id="p",
                        queues={"billing": QueueOptions(max_delivery_attempts=10)})
    with caplog.at_level(logging.WARNING):
        assert settings.queue_options("billing").max_delivery_attempts == 10
    assert not caplog.records


def test_declared_defaults_over_queue_defaults() -> None:
    queue("billing", ack_deadline_seconds=120)
    settings = Settings(project_id="p",
                        queue_defaults=QueueOptions(max_delivery_attempts=20,
                                                    ack_deadline_seconds=30))
    options = settings.queue_options("billing")
    assert (options.ack_deadline_seconds, options.max_delivery_attempts) == (120, 20)


def test_topology_and_terraform_vars_read_the_declaration() -> None:
    queue("billing", ordered=True, max_delivery_attempts=10)
    queue("payments", exactly_once=True)
    settings = Settings(project_id="p")
    billing = QueueTopology.of("billing", settings).worker_subscription()
    assert billing.enable_message_ordering and not billing.enable_exactly_once_delivery
    assert billing.dead_letter_policy.max_delivery_attempts == 10
    payments = QueueTopology.of("payments", settings)
    assert payments.worker_subscription().enable_exactly_once_delivery
    with pytest.raises(ConfigurationError, match="pull subscriptions only"):
        payments.push_subscription(None)  # type: ignore[arg-type]
    plain = QueueTopology.of("plain", settings).worker_subscription()
    assert not plain.enable_message_ordering and not plain.enable_exactly_once_delivery

    variables = terraform_vars(["billing", "payments", "plain"], settings)["queues"]
    assert variables["billing"]["ordered"] is True
    assert variables["billing"]["exactly_once"] is False
    assert variables["billing"]["max_delivery_attempts"] == 10
    assert variables["payments"]["exactly_once"] is True
    assert "ordered" not in variables["plain"]  # undeclared queues are written as before


def test_queue_value_compares_without_its_origin() -> None:
    a = Queue(name="x", ordered=True, origin="queue() at a.py:1")
    b = Queue(name="x", ordered=True, origin="queue() at b.py:9")
    assert a == b
