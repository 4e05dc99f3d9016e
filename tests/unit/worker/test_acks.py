"""Acks on an exactly-once subscription: Pub/Sub's answer is counted, a refusal is logged.

A refused ack cannot be produced on demand through a stream in a unit test (the emulator test
``tests/emulator/test_exactly_once.py`` loses a lease for real), so these tests use the
client's own ``Message`` on a request queue, and play only the part of the client's
dispatcher: it answers each request's future, with ``AcknowledgeStatus.SUCCESS`` or an
``AcknowledgeError``, as the dispatcher does after Pub/Sub's answer.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

import pytest
from google.cloud.pubsub_v1 import types
from google.cloud.pubsub_v1.subscriber.exceptions import AcknowledgeError, AcknowledgeStatus
from google.cloud.pubsub_v1.subscriber.message import Message

from pubsub_jobs import Registry, job
from pubsub_jobs.delivery import DeliveryStats
from pubsub_jobs.settings import Settings
from pubsub_jobs.worker.acks import ConfirmedAcks
from pubsub_jobs.worker.runner import Worker

registry = Registry()
RAN: list[int] = []


@job(name="tests.acks.pay", queue="payments", registry=registry)
def pay(n: int) -> None:
    RAN.append(n)


class Received:
    """One message as the client hands it to the worker, on a subscription with exactly-once
    delivery or without, and the requests the worker's ack or nack put on its queue."""

    def __init__(self, data: bytes = b"{}", attributes: dict[str, str] | None = None,
                 *, exactly_once: bool = True) -> None:
        self.requests: queue.Queue[Any] = queue.Queue()
        pb = types.PubsubMessage(
            data=data, message_id="m-1",
            attributes=attributes or {"job_name": "tests.acks.pay", "job_id": "job-1"})._pb
        self.message = Message(pb, "ack-1", 1, self.requests, lambda: exactly_once)

    def sent(self) -> list[Any]:
        """The requests sent, in order (taken off the queue)."""
        found = []
        while not self.requests.empty():
            found.append(self.requests.get_nowait())
        self._sent = found
        return found

    def answer(self, status: AcknowledgeStatus = AcknowledgeStatus.SUCCESS) -> None:
        """Pub/Sub answers every request sent, later, in the client's thread."""
        for request in self._sent:
            if request.future is None:
                continue
            if status is AcknowledgeStatus.SUCCESS:
                request.future.set_result(status)
            else:
                request.future.set_exception(AcknowledgeError(status, info=None))


def test_a_confirmed_ack_is_counted_when_pub_sub_answers() -> None:
    stats = DeliveryStats()
    received = Received()
    ConfirmedAcks("payments", stats).ack(received.message)
    (request,) = received.sent()
    assert type(request).__name__ == "AckRequest" and request.future is not None
    assert stats.acks_confirmed == 0  # the worker does not wait for the answer
    received.answer()
    assert (stats.acks_confirmed, stats.acks_refused) == (1, 0)


@pytest.mark.parametrize("status", [AcknowledgeStatus.INVALID_ACK_ID,
                                    AcknowledgeStatus.FAILED_PRECONDITION,
                                    AcknowledgeStatus.PERMISSION_DENIED,
                                    AcknowledgeStatus.OTHER])
def test_a_refused_ack_is_logged_with_job_message_queue_and_code(
    status: AcknowledgeStatus, caplog: pytest.LogCaptureFixture
) -> None:
    stats = DeliveryStats()
    received = Received()
    ConfirmedAcks("payments", stats).ack(received.message)
    received.sent()
    with caplog.at_level(logging.WARNING, logger="pubsub_jobs.worker.acks"):
        received.answer(status)
    assert (stats.acks_confirmed, stats.acks_refused) == (0, 1)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"Pub/Sub refused the ack of job tests.acks.pay job-1 (message m-1, queue payments): "
        f"{status.name}; its lease was lost, so the job runs again")


def test_a_refused_nack_is_counted_apart() -> None:
    stats = DeliveryStats()
    received = Received()
    ConfirmedAcks("payments", stats).nack(received.message)
    (request,) = received.sent()
    assert type(request).__name__ == "NackRequest" and request.future is not None
    received.answer(AcknowledgeStatus.INVALID_ACK_ID)
    assert (stats.nacks_refused, stats.acks_refused, stats.acks_confirmed) == (1, 0, 0)


def test_where_exactly_once_is_off_after_all_the_client_answers_at_once() -> None:
    """A subscription changed under a running worker: the client's ack_with_response is then
    already answered (SUCCESS), and counted at once."""
    stats = DeliveryStats()
    received = Received(exactly_once=False)
    ConfirmedAcks("payments", stats).ack(received.message)
    (request,) = received.sent()
    assert request.future is None and stats.acks_confirmed == 1


def _worker(exactly_once: bool) -> Worker:
    worker = Worker(["payments"], settings=Settings(project_id="p"), registry=registry,
                    middleware=[])
    worker._exactly_once["payments"] = exactly_once  # what the subscription check read
    return worker


def test_the_worker_acks_an_exactly_once_queue_with_pub_sub_answer() -> None:
    data, attributes = pay.message(7).encode()
    worker = _worker(exactly_once=True)
    received = Received(data, attributes)
    RAN.clear()
    worker._callback("payments")(received.message)
    (request,) = received.sent()
    assert RAN == [7] and request.future is not None
    received.answer(AcknowledgeStatus.INVALID_ACK_ID)  # the lease was lost meanwhile
    counts = worker.stats.snapshot()
    assert (counts["succeeded"], counts["acks_refused"], counts["acks_confirmed"]) == (1, 1, 0)


def test_the_worker_acks_other_queues_without_asking_for_an_answer() -> None:
    data, attributes = pay.message(8).encode()
    worker = _worker(exactly_once=False)
    # The client would answer an ack_with_response here (future set): a plain ack has none.
    received = Received(data, attributes, exactly_once=True)
    worker._callback("payments")(received.message)
    (request,) = received.sent()
    assert type(request).__name__ == "AckRequest" and request.future is None
    assert worker.stats.snapshot()["acks_confirmed"] == 0
