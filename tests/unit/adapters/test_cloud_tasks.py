"""Unit tests of the Cloud Tasks request a delayed job becomes: no emulator needed.

Task-name deduplication is tested here, on the request the scheduler builds and against a
fake client that refuses a name twice as Cloud Tasks does: the Cloud Tasks emulator does not
deduplicate task names, so an integration test could not show it.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import jsonschema
import pytest
from google.api_core import exceptions as gexc

from pubsub_jobs import (
    ConfigurationError,
    EnqueueError,
    InMemoryAdapter,
    MessageTooLarge,
    PubSubAdapter,
    ScheduleTooFar,
    Settings,
)
from pubsub_jobs.adapters.cloud_tasks import (
    MAX_TASK_BYTES,
    PUBSUB_SCOPE,
    CloudTasksScheduler,
    task_id,
    tasks_v2,
)
from pubsub_jobs.message import JobMessage, schema, utcnow
from pubsub_jobs.outcome import PREVIOUS_ATTEMPTS
from tests import jobs_delayed

SA = "jobs-scheduler@my-project.iam.gserviceaccount.com"
QUEUE_PATH = "projects/my-project/locations/us-central1/queues/jobs-delayed"


def production(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "project_id": "my-project",
        "cloud_tasks_location": "us-central1",
        "cloud_tasks_service_account": SA,
        "pubsub_emulator_host": None,
        "cloud_tasks_emulator_host": None,
        "publish_attempts": 3,
    }
    values.update(changes)
    return Settings(**values)


class FakeCloudTasks:
    """Records create_task calls; refuses a task name it has seen, as Cloud Tasks does."""

    def __init__(self, failures: list[BaseException] | None = None) -> None:
        self.calls: list[Any] = []
        self.names: set[str] = set()
        self.failures = list(failures or [])
        self.closed = False

    def create_task(self, *, parent: str, task: Any, timeout: float) -> Any:
        self.calls.append(task)
        if self.failures:
            raise self.failures.pop(0)
        if task.name in self.names:
            raise gexc.AlreadyExists(f"task {task.name} already exists")
        self.names.add(task.name)
        return task


def delayed_message(delay: float = 60, **using: Any) -> JobMessage:
    return jobs_delayed.remember.using(delay=delay, **using).message("hello")


def published(task: Any) -> tuple[bytes, dict[str, str]]:
    body = json.loads(task.http_request.body)
    assert list(body) == ["messages"] and len(body["messages"]) == 1
    message = body["messages"][0]
    return base64.b64decode(message["data"]), message["attributes"]


def test_task_publishes_through_the_pubsub_rest_api_with_an_oauth_token() -> None:
    message = delayed_message()
    task = CloudTasksScheduler(production(), client=FakeCloudTasks()).build_task(message)
    request = task.http_request
    topic = f"projects/my-project/topics/jobs-{jobs_delayed.QUEUE}"
    assert request.url == f"https://pubsub.googleapis.com/v1/{topic}:publish"
    assert request.http_method == tasks_v2.HttpMethod.POST
    assert dict(request.headers) == {"Content-Type": "application/json"}
    assert request.oauth_token.service_account_email == SA
    assert request.oauth_token.scope == PUBSUB_SCOPE == "https://www.googleapis.com/auth/pubsub"
    assert re.fullmatch(rf"{QUEUE_PATH}/tasks/[0-9a-f]{{16}}-{message.job_id}", task.name)
    assert task.schedule_time == message.scheduled_at


def test_published_message_is_the_immediate_one_plus_scheduled_at() -> None:
    message = delayed_message(job_id="order-42")
    task = CloudTasksScheduler(production(), client=FakeCloudTasks()).build_task(message)
    data, attributes = published(task)

    immediate_data, immediate_attributes = replace(message, scheduled_at=None).encode()
    assert data == immediate_data  # byte for byte
    assert attributes == {**immediate_attributes, "scheduled_at": attributes["scheduled_at"]}
    assert JobMessage.decode(data, attributes).scheduled_at == message.scheduled_at
    jsonschema.validate({"data": json.loads(data), "attributes": attributes}, schema())


def test_against_the_emulators_the_url_is_the_pubsub_emulator_and_no_token() -> None:
    settings = production(
        cloud_tasks_service_account=None,
        pubsub_emulator_host="127.0.0.1:8085",
        cloud_tasks_emulator_host="127.0.0.1:9022",
    )
    task = CloudTasksScheduler(settings, client=FakeCloudTasks()).build_task(delayed_message())
    assert task.http_request.url == (
        f"http://127.0.0.1:8085/v1/projects/my-project/topics/jobs-{jobs_delayed.QUEUE}:publish"
    )
    assert dict(task.http_request.headers) == {"Content-Type": "application/json"}
    assert not task.http_request.oauth_token.service_account_email


def test_task_name_is_the_same_for_the_same_job_and_new_per_reschedule() -> None:
    scheduler = CloudTasksScheduler(production(), client=FakeCloudTasks())
    first = delayed_message(job_id="job-1")
    again = delayed_message(delay=120, job_id="job-1")  # a retried enqueue, a bit later
    other = delayed_message(job_id="job-2")
    retry = first.with_attributes(**{PREVIOUS_ATTEMPTS: "1"})
    names = [scheduler.build_task(m).name for m in (first, again, other, retry)]
    assert names[0] == names[1]
    assert len(set(names)) == 3
    assert names[3].endswith("-job-1-r1")


def test_task_id_is_valid_for_any_job_id() -> None:
    message = replace(delayed_message(), job_id="tenant/42: résumé " + "x" * 600)
    ident = task_id("projects/p/topics/t", message)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,500}", ident)
    assert ident != task_id("projects/p/topics/t", replace(message, job_id="tenant_42"))


def test_retried_enqueue_does_not_schedule_twice() -> None:
    client = FakeCloudTasks()
    scheduler = CloudTasksScheduler(production(), client=client)
    message = delayed_message(job_id="pay-invoice-7")
    first = scheduler.schedule(message)
    second = scheduler.schedule(message)  # AlreadyExists counts as success
    assert first.job_id == second.job_id == "pay-invoice-7"
    assert len(client.names) == 1 and len(client.calls) == 2


def test_timeout_after_the_task_was_created_is_retried_and_counts_as_success() -> None:
    client = FakeCloudTasks()
    message = delayed_message()
    name = CloudTasksScheduler(production(), client=client).build_task(message).name
    client.names.add(name)  # Cloud Tasks created it, but the answer was lost:
    client.failures.append(gexc.DeadlineExceeded("deadline exceeded"))
    result = CloudTasksScheduler(production(), client=client).schedule(message)
    assert result.scheduled_at == message.scheduled_at
    assert [t.name for t in client.calls] == [name, name]


def test_transient_errors_are_retried_a_bounded_number_of_times() -> None:
    client = FakeCloudTasks([gexc.ServiceUnavailable("down")] * 10)
    scheduler = CloudTasksScheduler(production(publish_attempts=2), client=client)
    with pytest.raises(EnqueueError, match="after retries"):
        scheduler.schedule(delayed_message())
    assert len(client.calls) == 2


def test_timeout_on_every_attempt_says_to_enqueue_again_with_the_same_job_id() -> None:
    client = FakeCloudTasks([gexc.DeadlineExceeded("deadline exceeded")] * 10)
    with pytest.raises(EnqueueError, match="not scheduled") as info:
        CloudTasksScheduler(production(), client=client).schedule(delayed_message())
    assert "enqueue it again with the same job_id" in str(info.value)
    assert "not scheduled twice" in str(info.value)
    assert len(client.calls) == 3  # publish_attempts, the policy the Pub/Sub adapter uses


def test_missing_queue_says_how_to_create_it() -> None:
    client = FakeCloudTasks([gexc.NotFound("queue not found")])
    with pytest.raises(EnqueueError, match="pubsub-jobs bootstrap"):
        CloudTasksScheduler(production(), client=client).schedule(delayed_message())
    assert len(client.calls) == 1  # terminal errors are not retried


def test_more_than_30_days_ahead_is_refused() -> None:
    scheduler = CloudTasksScheduler(production(), client=FakeCloudTasks())
    scheduler.build_task(delayed_message(delay=timedelta(days=29, hours=23)))
    with pytest.raises(ScheduleTooFar, match="30 days"):
        scheduler.build_task(delayed_message(delay=timedelta(days=30, minutes=1)))
    with pytest.raises(ScheduleTooFar):
        jobs_delayed.remember.using(
            run_at=utcnow() + timedelta(days=45),
            adapter=PubSubAdapter(production(), publisher=object()),  # type: ignore[arg-type]
        ).enqueue("far")


def test_task_larger_than_one_megabyte_is_refused() -> None:
    scheduler = CloudTasksScheduler(production(), client=FakeCloudTasks())
    big = jobs_delayed.remember.using(delay=60).message("x" * 700_000)
    scheduler.build_task(big)  # about 930 kB once base64-encoded: fits
    too_big = jobs_delayed.remember.using(delay=60).message("x" * (MAX_TASK_BYTES - 200_000))
    with pytest.raises(MessageTooLarge, match="Cloud Tasks task"):
        scheduler.build_task(too_big)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"cloud_tasks_location": None}, "PUBSUB_JOBS_CLOUD_TASKS_LOCATION"),
        ({"cloud_tasks_service_account": None}, "PUBSUB_JOBS_CLOUD_TASKS_SERVICE_ACCOUNT"),
        ({"project_id": None}, "PUBSUB_JOBS_PROJECT_ID"),
        ({"pubsub_emulator_host": "127.0.0.1:8085"}, "CLOUD_TASKS_EMULATOR_HOST"),
        ({"cloud_tasks_emulator_host": "127.0.0.1:9022"}, "PUBSUB_EMULATOR_HOST"),
    ],
)
def test_missing_setting_is_an_error_at_enqueue_naming_it(
    changes: dict[str, Any], named: str
) -> None:
    adapter = PubSubAdapter(production(**changes))
    with pytest.raises(ConfigurationError, match=named):
        jobs_delayed.remember.using(delay=60, adapter=adapter).enqueue("x")


@pytest.mark.parametrize("delay", [0, -5, timedelta(seconds=-1)])
def test_delay_of_zero_or_less_publishes_at_once(delay: Any) -> None:
    adapter = InMemoryAdapter()
    result = jobs_delayed.remember.using(delay=delay, adapter=adapter).enqueue("now")
    assert adapter.scheduled == []
    assert [m.job_id for m in adapter.jobs(jobs_delayed.QUEUE)] == [result.job_id]
