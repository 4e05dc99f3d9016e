"""pubsub-jobs' Cloud Tasks emulator over gRPC and HTTP: the official client against a
server in this process (and one as a process of its own), tasks dispatched to a local HTTP
target. Timing is asserted as order and bounds only ("not before", "at most N at once")."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks import transports

from pubsub_jobs.emulator import free_port, start_tasks_emulator
from pubsub_jobs.emulator.tasks.dispatch import send
from pubsub_jobs.emulator.tasks.server import TasksServer
from tests.waiting import wait_for

LOCATION = "projects/p/locations/us-central1"
QUEUE = f"{LOCATION}/queues/q"


class Target:
    """A local HTTP target: records each request (time, path, headers), answers the status
    ``answers`` pops (200 when empty), optionally holding each request until released."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, str, dict[str, str]]] = []
        self.answers: list[int] = []
        self.hold = threading.Event()
        self.hold.set()
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with target.lock:
                    target.requests.append((time.time(), self.path, dict(self.headers)))
                    target.active += 1
                    target.most_active = max(target.most_active, target.active)
                    status = target.answers.pop(0) if target.answers else 200
                target.hold.wait(30)
                with target.lock:
                    target.active -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def target() -> Iterator[Target]:
    made = Target()
    yield made
    made.close()


@pytest.fixture
def server() -> Iterator[TasksServer]:
    with TasksServer(tombstone_seconds=3600) as running:
        yield running


@pytest.fixture
def client(server: TasksServer) -> Iterator[tasks_v2.CloudTasksClient]:
    channel = grpc.insecure_channel(server.host)
    yield tasks_v2.CloudTasksClient(
        transport=transports.CloudTasksGrpcTransport(channel=channel))
    channel.close()


def make_queue(client: tasks_v2.CloudTasksClient, **fields: object) -> tasks_v2.Queue:
    return client.create_queue(parent=LOCATION, queue=tasks_v2.Queue(name=QUEUE, **fields))


def http_task(url: str, name: str = "", **fields: object) -> tasks_v2.Task:
    task = tasks_v2.Task(http_request=tasks_v2.HttpRequest(url=url, body=b"{}"), **fields)
    if name:
        task.name = f"{QUEUE}/tasks/{name}"
    return task


def test_queues_round_trip_through_the_official_client(client) -> None:
    made = make_queue(client, rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=5))
    assert made.rate_limits.max_burst_size == 5
    with pytest.raises(gexc.AlreadyExists):
        make_queue(client)
    assert client.get_queue(name=QUEUE).state == tasks_v2.Queue.State.RUNNING
    assert [q.name for q in client.list_queues(parent=LOCATION)] == [QUEUE]
    assert client.pause_queue(name=QUEUE).state == tasks_v2.Queue.State.PAUSED
    assert [q.name for q in client.list_queues(
        request={"parent": LOCATION, "filter": "state: PAUSED"})] == [QUEUE]
    assert client.resume_queue(name=QUEUE).state == tasks_v2.Queue.State.RUNNING
    updated = client.update_queue(
        queue=tasks_v2.Queue(name=QUEUE, retry_config=tasks_v2.RetryConfig(max_attempts=3)),
        update_mask={"paths": ["retry_config.max_attempts"]})
    assert updated.retry_config.max_attempts == 3
    assert client.purge_queue(name=QUEUE).purge_time
    client.delete_queue(name=QUEUE)
    with pytest.raises(gexc.NotFound):
        client.get_queue(name=QUEUE)


def test_errors_answer_the_codes_cloud_tasks_answers(client) -> None:
    make_queue(client)
    with pytest.raises(gexc.InvalidArgument):
        client.get_task(name=f"{QUEUE}/tasks/not.valid")
    with pytest.raises(gexc.NotFound):
        client.get_task(name=f"{QUEUE}/tasks/missing")
    far = datetime.now(UTC) + timedelta(days=31)
    with pytest.raises(gexc.InvalidArgument, match="30 days"):
        client.create_task(parent=QUEUE, task=http_task("http://127.0.0.1:1/", schedule_time=far))
    with pytest.raises(gexc.MethodNotImplemented):
        client.get_iam_policy(resource=QUEUE)


def test_batches_create_and_delete_with_a_failure_per_request(client) -> None:
    make_queue(client)
    later = datetime.now(UTC) + timedelta(hours=1)
    requests = [tasks_v2.CreateTaskRequest(parent=QUEUE, task=http_task(
        "http://127.0.0.1:1/", name=f"t{n}", schedule_time=later)) for n in range(3)]
    created = client.batch_create_tasks(parent=QUEUE, requests=requests).result(timeout=10)
    assert sorted(t.name.rsplit("/", 1)[1] for t in created.tasks) == ["t0", "t1", "t2"]
    again = client.batch_create_tasks(parent=QUEUE, requests=requests[:1] + [
        tasks_v2.CreateTaskRequest(parent=QUEUE, task=http_task(
            "http://127.0.0.1:1/", name="t3", schedule_time=later))])
    assert [t.name.rsplit("/", 1)[1] for t in again.result(timeout=10).tasks] == ["t3"]
    assert list(again.metadata.failed_requests) == [0]
    deleted = client.batch_delete_tasks(
        parent=QUEUE, names=[f"{QUEUE}/tasks/t{n}" for n in range(5)])
    deleted.result(timeout=10)
    assert sorted(deleted.metadata.failed_requests) == [4]
    assert list(client.list_tasks(parent=QUEUE)) == []


def test_a_due_task_is_dispatched_not_before_its_time_and_completes(client, target) -> None:
    make_queue(client)
    due = datetime.now(UTC) + timedelta(seconds=1)
    task = client.create_task(parent=QUEUE, task=http_task(
        f"{target.url}/publish", name="later", schedule_time=due))
    wait_for(lambda: target.requests, what="the dispatch")
    sent_at, path, headers = target.requests[0]
    assert sent_at >= due.timestamp()
    assert path == "/publish"
    assert headers["X-CloudTasks-TaskName"] == "later"
    wait_for(lambda: not list(client.list_tasks(parent=QUEUE)), what="the task to complete")
    with pytest.raises(gexc.AlreadyExists):
        client.create_task(parent=QUEUE, task=http_task(target.url, name="later"))
    assert task.schedule_time == due


def test_a_failed_dispatch_is_retried_after_the_backoff(client, target) -> None:
    make_queue(client, retry_config=tasks_v2.RetryConfig(
        max_attempts=5, min_backoff=timedelta(seconds=0.5), max_backoff=timedelta(seconds=1)))
    target.answers = [500, 503]
    name = client.create_task(parent=QUEUE, task=http_task(target.url)).name
    wait_for(lambda: len(target.requests) >= 3, what="three attempts")
    times = [sent for sent, _, _ in target.requests]
    assert times[1] - times[0] >= 0.5
    assert times[2] - times[1] >= 1.0
    assert [h["X-CloudTasks-TaskRetryCount"] for _, _, h in target.requests] == ["0", "1", "2"]
    wait_for(lambda: not list(client.list_tasks(parent=QUEUE)), what="the task to complete")
    with pytest.raises(gexc.AlreadyExists):
        client.create_task(parent=QUEUE, task=http_task(target.url, name=name.rsplit("/")[-1]))


def test_at_most_max_concurrent_dispatches_reach_the_target_at_once(client, target) -> None:
    make_queue(client, rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=2))
    target.hold.clear()
    for _ in range(6):
        client.create_task(parent=QUEUE, task=http_task(target.url))
    wait_for(lambda: target.active == 2, what="two requests under way")
    time.sleep(0.3)  # room for a third, which must not come
    assert target.most_active == 2
    target.hold.set()
    wait_for(lambda: len(target.requests) == 6, what="all six requests")
    assert target.most_active == 2


def test_a_paused_queue_dispatches_nothing_until_resumed(client, target) -> None:
    make_queue(client)
    client.pause_queue(name=QUEUE)
    client.create_task(parent=QUEUE, task=http_task(target.url))
    time.sleep(0.5)
    assert target.requests == []
    client.resume_queue(name=QUEUE)
    wait_for(lambda: target.requests, what="the dispatch after resuming")


def test_the_queue_rate_bounds_the_dispatches(client, target) -> None:
    make_queue(client, rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=5))
    start = time.time()
    for _ in range(10):
        client.create_task(parent=QUEUE, task=http_task(target.url))
    wait_for(lambda: len(target.requests) == 10, what="ten dispatches")
    # A bucket of 5 tokens, refilled at 5 a second: the tenth comes a second later at least.
    assert max(sent for sent, _, _ in target.requests) - start >= 0.9


def test_a_target_that_does_not_answer_in_time_is_a_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        status, error = send("POST", f"http://127.0.0.1:{port}/", {}, b"x", 0.3)
    assert status is None
    assert "timed out" in error


def test_the_emulator_process_takes_the_tombstone_time(tmp_path, target) -> None:
    process = start_tasks_emulator(free_port(), log_path=tmp_path / "tasks.log",
                                   tombstone_seconds=0.5, queues=[QUEUE])
    channel = grpc.insecure_channel(process.host)
    try:
        client = tasks_v2.CloudTasksClient(
            transport=transports.CloudTasksGrpcTransport(channel=channel))
        client.create_task(parent=QUEUE, task=http_task(target.url, name="again"))
        wait_for(lambda: not list(client.list_tasks(parent=QUEUE)), what="the task to complete")
        wait_for(lambda: _created(client, target.url), what="the name to be free again")
        assert "listening on" in (tmp_path / "tasks.log").read_text()
    finally:
        channel.close()
        process.stop()
    assert not process.is_running()


def _created(client: tasks_v2.CloudTasksClient, url: str) -> bool:
    try:
        client.create_task(parent=QUEUE, task=http_task(url, name="again"))
    except gexc.AlreadyExists:
        return False
    return True
