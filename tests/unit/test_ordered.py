"""Ordered jobs without an emulator: the ordering key on the message, the refusals at
enqueue, the in-memory adapter's order, and the worker's and push endpoint's rules for a
message with a key (tests/emulator/test_ordered.py runs them on a real subscription)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud.pubsub_v1.types import BatchSettings

from pubsub_jobs import InMemoryAdapter, PubSubAdapter, Settings, enqueue_many, queues
from pubsub_jobs.adapters.cloud_tasks import CloudTasksScheduler
from pubsub_jobs.delivery import Delivery
from pubsub_jobs.errors import BulkEnqueueError, ConfigurationError
from pubsub_jobs.outcome import Action, Outcome, Reason
from pubsub_jobs.perform import Performer
from pubsub_jobs.push.envelope import parse_envelope
from pubsub_jobs.queues import QueueOptions, build_queue
from pubsub_jobs.worker.ordering import MAX_WAIT, KeyHolds, retry_wait
from tests import jobs_iterating, jobs_ordered
from tests.jobs_ordered import QUEUE, doomed, flaky, runs, step, waits_long
from tests.unit.adapters.test_cloud_tasks import FakeCloudTasks, production


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    jobs_ordered.reset()
    yield
    jobs_ordered.reset()


@pytest.fixture
def unordered_queue() -> Iterator[str]:
    """Queue ``plain-declared``, declared without ``ordered``; forgotten afterwards."""
    queues.declared_queues.add(build_queue("plain-declared"))
    yield "plain-declared"
    queues.declared_queues.remove("plain-declared")


def test_the_key_travels_on_the_message_not_in_its_attributes() -> None:
    message = step.using(ordering_key="customer-42").message("customer-42", 1)
    assert message.ordering_key == "customer-42"
    data, attributes = message.encode()
    assert "ordering_key" not in attributes and b"customer-42" in data  # the argument only
    assert step.message("x", 1).ordering_key is None


@pytest.mark.parametrize("key", ["", 42, b"bytes"])
def test_a_key_that_is_not_a_non_empty_string_is_refused(key: object) -> None:
    with pytest.raises(ConfigurationError, match="ordering_key is a non-empty string"):
        step.using(ordering_key=key)  # type: ignore[arg-type]


def test_a_key_over_pubsubs_1024_bytes_is_refused_in_a_sentence() -> None:
    step.using(ordering_key="é" * 512)  # 1,024 bytes: Pub/Sub's limit, taken
    with pytest.raises(ConfigurationError) as caught:
        step.using(ordering_key="é" * 513)
    assert str(caught.value) == (
        "ordering_key 'éééééééééééééééééééééééééééééééééééééééé'... is 1,026 bytes of UTF-8; "
        "Pub/Sub takes at most 1,024: use a shorter key (an id, or a hash of the long one)")


def test_a_key_on_a_queue_not_declared_ordered_is_refused_and_nothing_is_enqueued(
    memory_adapter: InMemoryAdapter, unordered_queue: str,
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        step.using(queue=unordered_queue, ordering_key="a").enqueue("a", 1)
    assert str(caught.value) == (
        f"job {step.name!r}: ordering_key='a' needs an ordered queue, but queue "
        "'plain-declared' is declared without ordered=True: declare it with "
        "queue('plain-declared', ordered=True) beside its jobs, and import that module in "
        "every process that enqueues to it (and run bootstrap or Terraform, which make its "
        "subscription ordered); nothing was enqueued")
    with pytest.raises(ConfigurationError, match="is not declared in the modules this process"):
        step.using(queue="nobody-declared-me", ordering_key="a").enqueue("a", 1)
    with pytest.raises(ConfigurationError, match="needs an ordered queue"):
        enqueue_many([step.using(ordering_key="a").message("a", 0),
                      step.using(queue=unordered_queue, ordering_key="a").message("a", 1)])
    assert memory_adapter.jobs() == []  # not even the first of the bulk


def test_an_iterating_job_cannot_have_a_key() -> None:
    assert jobs_iterating.walk.is_iterating
    with pytest.raises(ConfigurationError, match="is an iterating job: its checkpoints"):
        jobs_iterating.walk.using(ordering_key="a")


def test_memory_runs_each_key_in_order_and_interleaves_keys(
    memory_adapter: InMemoryAdapter,
) -> None:
    enqueue_many([step.using(ordering_key=key).message(key, n)
                  for n in range(3) for key in ("a", "b")])
    memory_adapter.run()
    assert [(k, n) for _, k, n, _ in jobs_ordered.RAN] == [
        ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_memory_retries_a_failed_job_before_the_later_jobs_of_its_key(
    memory_adapter: InMemoryAdapter,
) -> None:
    flaky.using(ordering_key="a").enqueue("a", 0)
    step.using(ordering_key="a").enqueue("a", 1)
    step.using(ordering_key="b").enqueue("b", 0)
    summary = memory_adapter.run()
    assert runs("a") == [("flaky", 0, 1), ("flaky", 0, 2), ("step", 1, 1)]
    assert runs("b") == [("step", 0, 1)]
    assert jobs_ordered.RAN[1][1] == "b"  # another key ran while "a" waited for its retry
    assert (summary.succeeded, summary.retried, summary.dead_lettered) == (3, 1, 0)


def test_memory_dead_letters_a_failing_job_then_runs_the_next_of_its_key(
    memory_adapter: InMemoryAdapter,
) -> None:
    doomed.using(ordering_key="a").enqueue("a", 0)
    step.using(ordering_key="a").enqueue("a", 1)
    summary = memory_adapter.run()
    assert runs("a") == [*[("doomed", 0, n) for n in range(1, 6)], ("step", 1, 1)]
    [dead] = memory_adapter.dead_jobs(QUEUE)
    assert (dead.reason, dead.attempts) == ("max_attempts", 5)
    assert summary.dead_lettered == 1


def test_a_long_wait_of_a_job_with_a_key_is_never_rescheduled(
    memory_adapter: InMemoryAdapter,
) -> None:
    waits_long.using(ordering_key="a").enqueue("a", 0)
    step.using(ordering_key="a").enqueue("a", 1)
    summary = memory_adapter.run()
    assert memory_adapter.delayed_jobs() == []
    assert runs("a") == [("waits_long", 0, 1), ("waits_long", 0, 2), ("step", 1, 1)]
    assert summary.retried == 1
    # without a key, the same failure is held in Cloud Tasks (here: the adapter's list)
    waits_long.enqueue("c", 0)
    memory_adapter.run()
    assert len(memory_adapter.delayed_jobs()) == 1


def test_perform_turns_a_reschedule_into_a_retry_in_place_for_a_key() -> None:
    message = waits_long.message("a", 0)
    data, attributes = message.encode()
    performer = Performer()
    plain = performer.perform(Delivery(data, attributes, "1", 1, QUEUE))
    assert plain.action is Action.RESCHEDULE
    keyed = Delivery(data, attributes, "1", 1, QUEUE, ordering_key="a")
    outcome = performer.perform(keyed)
    assert (outcome.action, outcome.delay) == (Action.NACK, timedelta(hours=1))


def test_a_delayed_job_keeps_its_key_until_it_is_published(
    memory_adapter: InMemoryAdapter,
) -> None:
    step.using(ordering_key="a", delay=60).enqueue("a", 0)
    [held] = memory_adapter.delayed_jobs()
    assert held.ordering_key == "a"


def test_the_wait_before_a_retry_in_place() -> None:
    options = QueueOptions(min_retry_backoff=timedelta(seconds=2),
                           max_retry_backoff=timedelta(seconds=10))
    failed = Outcome(Action.NACK, Reason.RETRY, RuntimeError())
    assert [retry_wait(failed, n, options) for n in range(1, 6)] == [2, 4, 8, 10, 10]
    asked = Outcome(Action.NACK, Reason.RETRY, RuntimeError(), delay=timedelta(seconds=30))
    assert retry_wait(asked, 3, options) == 30
    too_long = Outcome(Action.NACK, Reason.RETRY, RuntimeError(), delay=timedelta(hours=2))
    assert retry_wait(too_long, 1, options) == MAX_WAIT


def test_a_held_key_puts_back_what_the_client_held_until_the_nacked_one_returns() -> None:
    holds = KeyHolds()
    before = time.time()
    assert not holds.put_back("q", "a", "m2", before)
    holds.hold("q", "a", "m1", seconds=60)
    assert holds.put_back("q", "a", "m2", before) and holds.put_back("q", "a", "m3", before)
    assert holds.put_back("q", "a", "m3", None)  # when the client's stamp is unknown
    assert not holds.put_back("q", "b", "m9", before)  # another key
    assert not holds.put_back("q", "a", "m1", time.time() + 1)  # the nacked one: it runs
    assert not holds.put_back("q", "a", "m2", before)  # the hold ended with it
    holds.hold("q", "a", "m1", seconds=60)
    # received after the nack: Pub/Sub delivers the key in order again, so it runs
    assert not holds.put_back("q", "a", "m2", time.time() + 1)
    holds.hold("q", "a", "m1", seconds=0)  # a hold that ran out: the next one runs
    assert not holds.put_back("q", "a", "m2", before)
    assert not holds


def test_a_pushed_message_carries_its_ordering_key() -> None:
    body = {"subscription": "projects/p/subscriptions/s", "message": {
        "data": base64.b64encode(b"{}").decode(), "messageId": "1", "orderingKey": "a"}}
    assert parse_envelope(json.dumps(body).encode()).ordering_key == "a"
    del body["message"]["orderingKey"]  # type: ignore[attr-defined]
    assert parse_envelope(json.dumps(body).encode()).ordering_key == ""


def test_a_delayed_job_with_a_key_is_published_with_it_when_due() -> None:
    message = step.using(ordering_key="a", delay=60).message("a", 0)
    task = CloudTasksScheduler(production(), client=FakeCloudTasks()).build_task(message)
    [published] = json.loads(task.http_request.body)["messages"]
    assert published["orderingKey"] == "a" and "ordering_key" not in published["attributes"]


class _FailingSecondRequest(PubSubAdapter):
    """Our adapter with its one request method replaced: the second request fails for good
    (PermissionDenied), the others answer with message ids; nothing reaches a network."""

    def __init__(self) -> None:
        super().__init__(Settings(project_id="p"), middleware=[],
                         batch_settings=BatchSettings(max_messages=2, max_bytes=10**6,
                                                      max_latency=0.01))
        self.requests: list[list[str]] = []

    def publish_request(self, topic_path: str, messages: Sequence[Any]) -> list[str]:
        self.requests.append([json.loads(m.data)["args"][1] for m in messages])
        if len(self.requests) == 2:
            raise gexc.PermissionDenied("no")
        return [f"id{len(self.requests)}-{i}" for i in range(len(messages))]


def test_a_failed_bulk_request_leaves_the_later_jobs_of_its_keys_unsent() -> None:
    adapter = _FailingSecondRequest()
    messages = [step.using(ordering_key=key).message(key, n)
                for n, key in enumerate(["a", "b", "a", "c", "a", "b", "c"])]
    with pytest.raises(BulkEnqueueError) as caught:
        adapter.enqueue_many(messages)
    # one request after another: [a0, b1], [a2, c3] fails, then a4 is not sent (key a
    # failed), [b5, c6] -> c6 is not sent either (key c failed), b5 goes alone
    assert adapter.requests == [[0, 1], [2, 3], [5]]
    assert [r.job_id for r in caught.value.enqueued] == [messages[i].job_id for i in (0, 1, 5)]
    failed = {m.job_id: str(e) for m, e in caught.value.failed}
    assert set(failed) == {messages[i].job_id for i in (2, 3, 4, 6)}
    assert failed[messages[4].job_id].startswith(
        "not sent: an earlier job of ordering key 'a' was not published")
