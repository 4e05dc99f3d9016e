"""The threads that run a stream's jobs (``JobThreads``, the client's Scheduler interface):
what a stop returns and waits for, and what a callback cannot break. No emulator: the
messages are the client's own ``Message`` objects on a local request queue."""

from __future__ import annotations

import queue
import threading

from google.cloud.pubsub_v1.subscriber import message as client_message
from google.cloud.pubsub_v1.subscriber._protocol import requests
from google.pubsub_v1 import types

from pubsub_jobs.worker.threads import JobThreads


def _message(scheduler: JobThreads, number: int) -> client_message.Message:
    pb = types.PubsubMessage(data=b"{}", message_id=str(number))._pb
    return client_message.Message(pb, f"ack-{number}", 1, scheduler.queue)


def test_runs_every_message_in_named_threads() -> None:
    threads = JobThreads(3, "pubsub-jobs-q")
    seen: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
    messages = [_message(threads, i) for i in range(30)]
    for message in messages:
        threads.schedule(lambda m: seen.put((m.message_id, threading.current_thread().name)),
                         message)
    got = [seen.get(timeout=10) for _ in messages]
    assert sorted(int(mid) for mid, _ in got) == list(range(30))
    assert {name for _, name in got} <= {"pubsub-jobs-q_0", "pubsub-jobs-q_1", "pubsub-jobs-q_2"}
    assert threads.shutdown(await_msg_callbacks=True) == []


def test_shutdown_returns_the_messages_not_started_and_waits_for_the_running_ones() -> None:
    threads = JobThreads(2, "pubsub-jobs-q")
    release = threading.Event()
    started: queue.SimpleQueue[str] = queue.SimpleQueue()
    finished: list[str] = []

    def job(message: client_message.Message) -> None:
        started.put(message.message_id)
        release.wait(10)
        finished.append(message.message_id)

    messages = [_message(threads, i) for i in range(6)]
    for message in messages:
        threads.schedule(job, message)
    running = {started.get(timeout=10), started.get(timeout=10)}  # both threads busy
    threading.Timer(0.3, release.set).start()
    dropped = threads.shutdown(await_msg_callbacks=True)
    assert sorted(finished) == sorted(running)  # returned only once both had finished
    assert {m.message_id for m in dropped} == {str(i) for i in range(6)} - running
    assert started.empty()  # none of the dropped ones ever started


def test_a_callback_raising_anything_leaves_its_thread_running() -> None:
    threads = JobThreads(1, "pubsub-jobs-q")
    done: queue.SimpleQueue[str] = queue.SimpleQueue()

    def explode(message: client_message.Message, error: BaseException) -> None:
        raise error

    for number, error in enumerate([SystemExit(3), KeyboardInterrupt(), RuntimeError("x")]):
        threads.schedule(explode, _message(threads, number), error)
    threads.schedule(lambda m: done.put(m.message_id), _message(threads, 9))
    assert done.get(timeout=10) == "9"  # the one thread survived all three
    assert threads.shutdown(await_msg_callbacks=True) == []


def test_a_message_scheduled_after_shutdown_is_nacked_not_held() -> None:
    threads = JobThreads(1, "pubsub-jobs-q")
    assert threads.shutdown() == []
    ran: list[str] = []
    threads.schedule(lambda m: ran.append(m.message_id), _message(threads, 1))
    request = threads.queue.get(timeout=1)
    assert isinstance(request, requests.NackRequest) and request.ack_id == "ack-1"
    assert ran == []
