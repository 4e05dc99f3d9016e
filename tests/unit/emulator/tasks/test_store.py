"""The Cloud Tasks emulator's state machine on a clock of the test's own: no thread, no
socket. Each test is one behaviour Cloud Tasks documents (names, tombstones, schedule,
rate limits, concurrency, retries, pause, NOT_FOUND, the limits of a task)."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from google.cloud import tasks_v2

from pubsub_jobs.emulator.tasks.names import ApiError
from pubsub_jobs.emulator.tasks.store import Dispatch, TaskStore
from pubsub_jobs.emulator.tasks.validate import utc

LOCATION = "projects/p/locations/us-central1"
QUEUE = f"{LOCATION}/queues/q"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_store(clock: Clock, **queue: object) -> TaskStore:
    store = TaskStore(tombstone_seconds=3600, clock=clock)
    store.create_queue(LOCATION, tasks_v2.Queue(name=QUEUE, **queue))
    return store


@pytest.fixture
def store(clock: Clock) -> TaskStore:
    return make_store(clock)


def task(name: str | None = None, *, at: float | None = None, **fields: object) -> tasks_v2.Task:
    made = tasks_v2.Task(
        http_request=tasks_v2.HttpRequest(url="http://127.0.0.1:1/publish", body=b"{}"),
        **fields)
    if name:
        made.name = f"{QUEUE}/tasks/{name}"
    if at is not None:
        made.schedule_time = utc(at)
    return made


def code(call: object, *args: object) -> grpc.StatusCode:
    with pytest.raises(ApiError) as info:
        call(*args)  # type: ignore[operator]
    return info.value.code


def due(store: TaskStore) -> list[Dispatch]:
    with store.changed:
        return store.take_due()[0]


def names(dispatches: list[Dispatch]) -> list[str]:
    return [d.task.rsplit("/", 1)[1] for d in dispatches]


@pytest.mark.parametrize("name", [
    "projects/p/locations/l/queues/q/tasks/bad.id",
    "projects/p/locations/l/queues/q/tasks/" + "a" * 501,
    "projects/p/locations/l/queues/q_x/tasks/a",
    "projects/p/queues/q/tasks/a",
    "projects/p/locations/l/queues/q/tasks/",
])
def test_malformed_names_are_invalid_argument(store: TaskStore, name: str) -> None:
    assert code(store.get_task, name) == grpc.StatusCode.INVALID_ARGUMENT
    assert code(store.create_queue, LOCATION, tasks_v2.Queue(name=f"{LOCATION}/queues/a.b")) \
        == grpc.StatusCode.INVALID_ARGUMENT


def test_a_task_name_outside_its_parent_queue_is_invalid_argument(store: TaskStore) -> None:
    other = task()
    other.name = f"{LOCATION}/queues/other/tasks/a"
    assert code(store.create_task, QUEUE, other) == grpc.StatusCode.INVALID_ARGUMENT


def test_missing_queue_and_task_are_not_found(store: TaskStore) -> None:
    missing = f"{LOCATION}/queues/missing"
    assert code(store.get_queue, missing) == grpc.StatusCode.NOT_FOUND
    assert code(store.create_task, missing, task()) == grpc.StatusCode.NOT_FOUND
    assert code(store.get_task, f"{QUEUE}/tasks/none") == grpc.StatusCode.NOT_FOUND
    assert code(store.delete_task, f"{QUEUE}/tasks/none") == grpc.StatusCode.NOT_FOUND
    assert code(store.delete_queue, missing) == grpc.StatusCode.NOT_FOUND


def test_creating_a_queue_that_exists_is_already_exists(store: TaskStore) -> None:
    assert code(store.create_queue, LOCATION, tasks_v2.Queue(name=QUEUE)) \
        == grpc.StatusCode.ALREADY_EXISTS


def test_a_task_without_a_name_gets_one(store: TaskStore) -> None:
    first = store.create_task(QUEUE, task())
    second = store.create_task(QUEUE, task())
    assert first.name.startswith(f"{QUEUE}/tasks/")
    assert first.name != second.name
    assert store.get_task(first.name).name == first.name


def test_a_name_is_refused_while_the_task_exists_and_for_an_hour_after_it_left(
    store: TaskStore, clock: Clock
) -> None:
    store.create_task(QUEUE, task("a"))
    assert code(store.create_task, QUEUE, task("a")) == grpc.StatusCode.ALREADY_EXISTS
    store.delete_task(f"{QUEUE}/tasks/a")
    assert code(store.get_task, f"{QUEUE}/tasks/a") == grpc.StatusCode.NOT_FOUND
    clock.now += 3599
    assert code(store.create_task, QUEUE, task("a")) == grpc.StatusCode.ALREADY_EXISTS
    clock.now += 1
    assert store.create_task(QUEUE, task("a")).name.endswith("/tasks/a")


def test_a_completed_task_keeps_its_name_taken(store: TaskStore, clock: Clock) -> None:
    store.create_task(QUEUE, task("done"))
    [attempt] = due(store)
    store.finish(attempt, 204)
    assert store.list_tasks(QUEUE) == []
    assert code(store.create_task, QUEUE, task("done")) == grpc.StatusCode.ALREADY_EXISTS
    clock.now += 3600
    store.create_task(QUEUE, task("done"))


def test_the_tombstone_time_is_configurable(clock: Clock) -> None:
    store = TaskStore(tombstone_seconds=2, clock=clock)
    store.create_queue(LOCATION, tasks_v2.Queue(name=QUEUE))
    store.create_task(QUEUE, task("a"))
    store.delete_task(f"{QUEUE}/tasks/a")
    clock.now += 2
    store.create_task(QUEUE, task("a"))


def test_a_purged_task_keeps_its_name_taken(store: TaskStore) -> None:
    store.create_task(QUEUE, task("a"))
    queue = store.purge_queue(QUEUE)
    assert "purge_time" in queue
    assert store.list_tasks(QUEUE) == []
    assert code(store.create_task, QUEUE, task("a")) == grpc.StatusCode.ALREADY_EXISTS


def test_no_dispatch_before_schedule_time(store: TaskStore, clock: Clock) -> None:
    store.create_task(QUEUE, task("later", at=T0 + 10))
    store.create_task(QUEUE, task("now"))
    with store.changed:
        taken, wait = store.take_due()
    assert names(taken) == ["now"]
    assert wait == pytest.approx(10)
    clock.now += 9.9
    assert due(store) == []
    clock.now += 0.1
    assert names(due(store)) == ["later"]


def test_dispatches_follow_the_token_bucket(clock: Clock) -> None:
    store = make_store(clock, rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=2))
    assert store.get_queue(QUEUE).rate_limits.max_burst_size == 2
    for n in range(6):
        store.create_task(QUEUE, task(f"t{n}"))
    assert len(due(store)) == 2  # the burst
    with store.changed:
        taken, wait = store.take_due()
    assert taken == []
    assert wait == pytest.approx(0.5)
    clock.now += 0.5
    assert len(due(store)) == 1
    clock.now += 1.0
    assert len(due(store)) == 2


def test_at_most_max_concurrent_dispatches_at_once(clock: Clock) -> None:
    store = make_store(clock, rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=2))
    for n in range(5):
        store.create_task(QUEUE, task(f"t{n}"))
    first = due(store)
    assert len(first) == 2
    assert due(store) == []
    store.finish(first[0], 200)
    assert len(due(store)) == 1


def test_a_paused_queue_dispatches_nothing_until_resumed(store: TaskStore) -> None:
    store.set_state(QUEUE, tasks_v2.Queue.State.PAUSED)
    store.create_task(QUEUE, task("a"))
    assert due(store) == []
    assert store.get_queue(QUEUE).state == tasks_v2.Queue.State.PAUSED
    store.set_state(QUEUE, tasks_v2.Queue.State.RUNNING)
    assert names(due(store)) == ["a"]


def test_run_task_dispatches_now_even_when_paused_or_not_due(store: TaskStore) -> None:
    store.set_state(QUEUE, tasks_v2.Queue.State.PAUSED)
    store.create_task(QUEUE, task("a", at=T0 + 3600))
    store.run_task(f"{QUEUE}/tasks/a")
    assert names(due(store)) == ["a"]


def test_a_failure_retries_after_the_backoff_and_counts_attempts(clock: Clock) -> None:
    store = make_store(clock, retry_config=tasks_v2.RetryConfig(
        max_attempts=3, min_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=10)))
    store.create_task(QUEUE, task("a"))
    name = f"{QUEUE}/tasks/a"
    [attempt] = due(store)
    assert attempt.headers["X-CloudTasks-TaskRetryCount"] == "0"
    shown = store.get_task(name)
    assert (shown.dispatch_count, shown.response_count) == (1, 0)
    assert shown.first_attempt.dispatch_time.timestamp() == T0
    store.finish(attempt, 503)
    shown = store.get_task(name)
    assert (shown.dispatch_count, shown.response_count) == (1, 1)
    assert shown.last_attempt.response_status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert shown.schedule_time.timestamp() == pytest.approx(T0 + 1)
    clock.now += 0.9
    assert due(store) == []
    clock.now += 0.1
    [attempt] = due(store)
    store.finish(attempt, None, "no answer within the dispatch deadline (timed out after 15 s)")
    shown = store.get_task(name)
    assert (shown.dispatch_count, shown.response_count) == (2, 1)
    assert shown.last_attempt.response_status.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert shown.schedule_time.timestamp() == pytest.approx(clock.now + 2)
    clock.now += 2
    [attempt] = due(store)
    assert attempt.headers["X-CloudTasks-TaskRetryCount"] == "2"
    store.finish(attempt, 500)  # the third and last attempt: it gives up
    assert store.list_tasks(QUEUE) == []
    assert code(store.create_task, QUEUE, task("a")) == grpc.StatusCode.ALREADY_EXISTS


def test_a_task_retry_config_overrides_the_queue(store: TaskStore) -> None:
    store.create_task(QUEUE, task("once", retry_config=tasks_v2.RetryConfig(max_attempts=1)))
    [attempt] = due(store)
    store.finish(attempt, 500)
    assert store.list_tasks(QUEUE) == []


def test_an_answer_to_a_deleted_task_changes_nothing(store: TaskStore) -> None:
    store.create_task(QUEUE, task("a"))
    [attempt] = due(store)
    store.delete_task(f"{QUEUE}/tasks/a")
    store.finish(attempt, 500)
    assert store.list_tasks(QUEUE) == []


def test_a_task_over_1_mb_is_invalid_argument(store: TaskStore) -> None:
    big = task("big")
    big.http_request.body = b"x" * 1_000_001
    assert code(store.create_task, QUEUE, big) == grpc.StatusCode.INVALID_ARGUMENT


def test_a_schedule_time_over_30_days_ahead_is_invalid_argument(store: TaskStore) -> None:
    far = task("far", at=T0 + timedelta(days=30, seconds=1).total_seconds())
    assert code(store.create_task, QUEUE, far) == grpc.StatusCode.INVALID_ARGUMENT
    store.create_task(QUEUE, task("near", at=T0 + timedelta(days=30).total_seconds()))


@pytest.mark.parametrize("bad", [
    tasks_v2.Task(http_request=tasks_v2.HttpRequest(url="ftp://x/")),
    tasks_v2.Task(http_request=tasks_v2.HttpRequest(
        url="http://x/", http_method=tasks_v2.HttpMethod.GET, body=b"x")),
    tasks_v2.Task(http_request=tasks_v2.HttpRequest(url="http://x/"),
                  dispatch_deadline=timedelta(seconds=14)),
    tasks_v2.Task(),
])
def test_requests_cloud_tasks_refuses_are_invalid_argument(
    store: TaskStore, bad: tasks_v2.Task
) -> None:
    assert code(store.create_task, QUEUE, bad) == grpc.StatusCode.INVALID_ARGUMENT


def test_app_engine_tasks_are_unimplemented(store: TaskStore) -> None:
    engine = tasks_v2.Task(app_engine_http_request=tasks_v2.AppEngineHttpRequest(
        relative_uri="/x"))
    assert code(store.create_task, QUEUE, engine) == grpc.StatusCode.UNIMPLEMENTED


def test_a_token_is_accepted_and_the_body_shown_in_full_view_only(store: TaskStore) -> None:
    made = task("a")
    made.http_request.oidc_token = tasks_v2.OidcToken(service_account_email="x@y.z")
    created = store.create_task(QUEUE, made)
    assert created.http_request.body == b""
    assert created.dispatch_deadline == timedelta(minutes=10)
    full = store.get_task(created.name, tasks_v2.Task.View.FULL)
    assert full.http_request.body == b"{}"
    assert full.http_request.http_method == tasks_v2.HttpMethod.POST
    [attempt] = due(store)
    assert "Authorization" not in attempt.headers


def test_update_queue_changes_the_rate_and_creates_a_missing_queue(store: TaskStore) -> None:
    updated = store.update_queue(
        tasks_v2.Queue(name=QUEUE, rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=5)),
        ["rate_limits.max_dispatches_per_second"])
    assert updated.rate_limits.max_dispatches_per_second == 5
    assert updated.rate_limits.max_burst_size == 5
    assert updated.rate_limits.max_concurrent_dispatches == 1000
    created = store.update_queue(tasks_v2.Queue(name=f"{LOCATION}/queues/new"), [])
    assert created.state == tasks_v2.Queue.State.RUNNING
    assert [q.name for q in store.list_queues(LOCATION)] == [f"{LOCATION}/queues/new", QUEUE]
