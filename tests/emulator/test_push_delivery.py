"""Push delivery against the emulator: its real pushes to a push server on 127.0.0.1, and
requests shaped as Google Cloud sends them (with ``deliveryAttempt``), for each row of the
decision table turned into HTTP answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pubsub_jobs.adapters.clients import publisher_client
from pubsub_jobs.admin.topology import bootstrap, delete_topology
from pubsub_jobs.push.server import PushServer
from pubsub_jobs.settings import Settings, configure
from tests import jobs_push
from tests.jobs_push import envelope, job_envelope, post, runs
from tests.waiting import wait_for

QUEUE = "push"


@pytest.fixture
def ran() -> Iterator[list[tuple[str, str, int, object]]]:
    jobs_push.RAN.clear()
    jobs_push.RUNNING[:] = [0, 0]
    yield jobs_push.RAN
    jobs_push.RAN.clear()


@pytest.fixture
def push_settings(pubsub_jobs_settings: Settings) -> Settings:
    """The test's settings with ``push_auth=none``, as against the emulator (which sends no
    token); ``pubsub_jobs_settings`` restores the settings afterwards."""
    return configure(**{**pubsub_jobs_settings.model_dump(), "push_auth": "none"})


@pytest.fixture
def push_server(push_settings: Settings, ran: object) -> Iterator[PushServer]:
    """A push server for queue ``push`` on a free port of 127.0.0.1, stopped afterwards."""
    server = PushServer([QUEUE], port=0, settings=push_settings).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def push_queue(push_settings: Settings, push_server: PushServer) -> Iterator[str]:
    """Queue ``push`` bootstrapped with a push subscription to ``push_server``."""
    bootstrap([QUEUE], push_settings, push_endpoint=push_server.url)
    try:
        yield push_server.url
    finally:
        delete_topology([QUEUE], push_settings)


def subscription(settings: Settings) -> str:
    return settings.subscription_path(QUEUE)


def test_the_emulator_pushes_a_job_which_runs_once(push_queue, push_server, ran):
    result = jobs_push.greet.enqueue("ada")
    jobs_push.agreet.enqueue("grace")
    wait_for(lambda: len(ran) == 2, what="both pushed jobs to run")
    # The emulator pushes a message again about a second after a failed answer; a 204 acked
    # it, so nothing comes back.
    time.sleep(3)
    assert runs("greet") == [("greet", result.job_id, 1, "ada")]
    assert [r[3] for r in runs("agreet")] == ["grace"]
    stats = push_server.handler.stats.snapshot()
    assert (stats["received"], stats["processed"], stats["failed"]) == (2, 2, 0)


def test_a_message_delivered_again_after_it_ran_is_not_run_again(push_server, push_settings):
    body = job_envelope(jobs_push.greet, "once", subscription=subscription(push_settings),
                        delivery_attempt=1)
    assert post(push_server.url, "/push/push", body)[0] == 204
    assert post(push_server.url, "/push/push", body)[0] == 204  # its answer was lost, say
    assert [r[3] for r in runs("greet")] == ["once"]
    assert push_server.handler.stats.snapshot()["duplicates"] == 1


def test_a_failing_job_retries_then_ends_dead_lettered_with_its_reason(
    push_queue, push_server, dead_letters, ran
):
    result = jobs_push.fail.enqueue("x")  # max_attempts=3
    dead = dead_letters(QUEUE, expect=1, timeout=60)
    assert [r[2] for r in runs("fail")] == [1, 2, 3]
    assert len(dead) == 1
    assert dead[0].job_id == result.job_id
    assert dead[0].reason == "max_attempts"
    assert dead[0].attributes["dead_letter_error"] == "RuntimeError: boom x"
    assert dead[0].attributes["delivery_attempt"] == "3"
    stats = push_server.handler.stats.snapshot()
    assert (stats["retried"], stats["dead_lettered"]) == (2, 1)


def test_delivery_attempt_of_the_envelope_counts_attempts(push_server, push_settings,
                                                          dead_letters):
    bootstrap([QUEUE], push_settings)  # a dead-letter topic to store the copy in
    try:
        sub = subscription(push_settings)
        first = job_envelope(jobs_push.fail, "a", subscription=sub, delivery_attempt=1)
        assert post(push_server.url, "/push/push", first)[0] == 503  # retried by Pub/Sub
        last = job_envelope(jobs_push.fail, "b", subscription=sub, delivery_attempt=3)
        assert post(push_server.url, "/push/push", last)[0] == 204  # our copy is stored
        assert [(r[2], r[3]) for r in runs("fail")] == [(1, "a"), (3, "b")]
        dead = dead_letters(QUEUE, expect=1)
        assert [(d.reason, d.attributes["delivery_attempt"]) for d in dead] == [
            ("max_attempts", "3")]
    finally:
        delete_topology([QUEUE], push_settings)


def test_discarded_rejected_and_dead_lettered_messages_are_done_with(
    push_server, push_settings, dead_letters
):
    bootstrap([QUEUE], push_settings)
    try:
        sub = subscription(push_settings)
        url = push_server.url
        assert post(url, "/push/push", job_envelope(jobs_push.discard, "d", subscription=sub,
                                                    delivery_attempt=1))[0] == 204
        unknown = {"job_name": "nowhere.job", "job_id": "j1", "queue_name": QUEUE,
                   "enqueued_at": "2026-01-01T00:00:00Z", "wire_version": "1"}
        body = b'{"args": [], "kwargs": {}}'
        assert post(url, "/push/push", envelope(body, unknown, subscription=sub))[0] == 204
        assert post(url, "/push/push", envelope(b"not json", {}, subscription=sub))[0] == 204
        data, attributes = jobs_push.greet.message("x").encode()
        data = data.replace(b'["x"]', b"[1, 2, 3]")
        assert post(url, "/push/push", envelope(data, attributes, subscription=sub))[0] == 204
        reasons = sorted(d.reason for d in dead_letters(QUEUE, expect=3))
        assert reasons == ["invalid_arguments", "invalid_message", "unknown_job"]
        assert [r[0] for r in runs()] == ["discard"]
    finally:
        delete_topology([QUEUE], push_settings)


def test_a_dead_letter_copy_that_cannot_be_stored_gets_503(push_server, push_settings):
    # No topology: the dead-letter topic does not exist, so the copy cannot be published.
    body = envelope(b"not a job", {}, subscription=subscription(push_settings))
    assert post(push_server.url, "/push/push", body)[0] == 503
    assert push_server.handler.stats.snapshot()["not_stored"] == 1


def test_a_reschedule_cloud_tasks_did_not_confirm_gets_503(push_server, push_settings):
    # No Cloud Tasks location is configured: the long-wait retry cannot be held anywhere.
    body = job_envelope(jobs_push.later, "l", subscription=subscription(push_settings),
                        delivery_attempt=1)
    assert post(push_server.url, "/push/push", body)[0] == 503
    assert [r[3] for r in runs("later")] == ["l"]


def test_a_reschedule_cloud_tasks_confirmed_gets_204(delayed_jobs_settings, ran):
    settings = configure(**{**delayed_jobs_settings.model_dump(), "push_auth": "none"})
    with PushServer([QUEUE], port=0, settings=settings) as server:
        body = job_envelope(jobs_push.later, "l", subscription=subscription(settings),
                            delivery_attempt=1)
        assert post(server.url, "/push/push", body)[0] == 204
        assert server.handler.stats.snapshot()["rescheduled"] == 1


def test_at_most_concurrency_jobs_run_at_once(push_settings, ran):
    with PushServer([QUEUE], port=0, settings=push_settings, concurrency=2) as server:
        statuses: list[int] = []
        bodies = [job_envelope(jobs_push.slow, str(i), 0.5, delivery_attempt=1)
                  for i in range(5)]
        threads = [threading.Thread(target=lambda b=b: statuses.append(
            post(server.url, "/push/push", b)[0])) for b in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert statuses == [204] * 5
        assert jobs_push.RUNNING[1] == 2
        assert len(runs("slow")) == 5


def test_routes_health_unknown_queues_and_methods(push_server):
    url = push_server.url
    assert post(url, "/healthz", method="GET") == (200, b"ok\n")
    assert post(url, "/push/other", job_envelope(jobs_push.greet, "x"))[0] == 404
    assert post(url, "/elsewhere", b"{}")[0] == 404
    assert post(url, "/push/push", method="GET")[0] == 405
    assert runs() == []


def test_the_endpoint_publishes_nothing_and_needs_no_topic_for_a_done_job(push_server):
    """A job that returns needs nothing stored: no topology, still 204."""
    body = job_envelope(jobs_push.greet, "free", delivery_attempt=1)
    assert post(push_server.url, "/push/push", body)[0] == 204
    assert [r[3] for r in runs("greet")] == ["free"]


def test_pushed_jobs_enqueue_through_the_same_settings(push_queue, push_settings):
    """The emulator's push reaches the server for a message published by anything (here the
    raw client), as the wire format promises."""
    data, attributes = jobs_push.greet.message("raw").encode()
    publisher = publisher_client(push_settings)
    try:
        publisher.publish(push_settings.topic_path(QUEUE), data, **attributes).result(30)
    finally:
        publisher.stop()
    wait_for(lambda: runs("greet"), what="the raw message's job")
    assert [r[3] for r in runs("greet")] == ["raw"]


def test_a_checkpoint_publishes_the_continuation_before_the_204(push_server, push_settings,
                                                                 monkeypatch):
    """An iterating job's checkpoint (``Action.CONTINUE``) is settled as the worker settles
    it: the continuation is published, then the pushed message is done with."""
    from pubsub_jobs.outcome import Action, Outcome, Reason

    handler = push_server.handler
    continuation = jobs_push.greet.message("next stretch")
    published: list[tuple[str, object]] = []
    monkeypatch.setattr(handler.performer, "perform", lambda *a, **k: Outcome(
        Action.CONTINUE, Reason.CHECKPOINT, continuation=continuation, items=3))
    monkeypatch.setattr(handler.adapter, "publish",
                        lambda message: published.append((message.queue, message.args)))
    body = job_envelope(jobs_push.greet, "x", subscription=subscription(push_settings),
                        delivery_attempt=1)
    assert post(push_server.url, "/push/push", body)[0] == 204
    assert published == [(QUEUE, ["next stretch"])]
    stats = handler.stats.snapshot()
    assert (stats["checkpointed"], stats["items"]) == (1, 3)

    def fail(message: object) -> None:
        raise RuntimeError("Pub/Sub is down")

    monkeypatch.setattr(handler.adapter, "publish", fail)
    body = job_envelope(jobs_push.greet, "y", subscription=subscription(push_settings),
                        delivery_attempt=1)
    assert post(push_server.url, "/push/push", body)[0] == 503


def test_iterating_jobs_that_checkpoint_past_the_deadline_are_warned_about():
    from pubsub_jobs import job
    from pubsub_jobs.jobs import Registry
    from pubsub_jobs.push.handler import warn_long_jobs

    registry = Registry()

    @job(queue="push", registry=registry, checkpoint_every=900)
    def walk(*, cursor: int | None = None) -> Iterator[int]:
        yield (cursor or 0) + 1

    @job(queue="push", registry=registry)
    def short(*, cursor: int | None = None) -> Iterator[int]:
        yield (cursor or 0) + 1

    warnings = warn_long_jobs(["push"], registry)
    assert len(warnings) == 1
    assert "checkpoints every 900 s" in warnings[0] and walk.name in warnings[0]
    assert warn_long_jobs(["other"], registry) == []


def test_the_settings_middleware_runs_around_pushed_jobs(pubsub_jobs_settings, ran):
    settings = configure(**{**pubsub_jobs_settings.model_dump(), "push_auth": "none",
                            "middleware": ["tests.jobs_push:Recorder"]})
    jobs_push.Recorder.seen.clear()
    with PushServer([QUEUE], port=0, settings=settings) as server:
        body = job_envelope(jobs_push.greet, "m", delivery_attempt=1)
        assert post(server.url, "/push/push", body)[0] == 204
    assert jobs_push.Recorder.seen == [("before", jobs_push.greet.name), ("after", "succeeded")]
