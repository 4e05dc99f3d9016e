"""``CloudTasksScheduler.schedule_many`` against a fake client that answers as Cloud Tasks'
BatchCreateTasks does (an operation whose metadata lists the failed requests with their
status): chunks of 100, per-task outcomes, retries, the CreateTask fallback. The same paths
run against pubsub-jobs' Cloud Tasks emulator in tests/emulator/test_unique_rate.py; here
the failures the emulator cannot be made to answer (a transient one for one task)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc

from pubsub_jobs.adapters.cloud_tasks import CloudTasksScheduler
from pubsub_jobs.errors import BulkEnqueueError
from pubsub_jobs.message import JobMessage
from tests import jobs_delayed
from tests.unit.adapters.test_cloud_tasks import production


class FakeBatchCloudTasks:
    """Creates tasks by name, refusing one it has seen; ``fail`` maps a part of a task name
    (a job id) to the codes its next requests answer (then it succeeds)."""

    def __init__(self, fail: dict[str, list[grpc.StatusCode]] | None = None,
                 *, batch: bool = True) -> None:
        self.names: set[str] = set()
        self.fail = {k: list(v) for k, v in (fail or {}).items()}
        self.batch = batch
        self.batches: list[int] = []
        self.singles = 0
        self.transport = SimpleNamespace(close=lambda: None)

    def _outcome(self, task: Any) -> grpc.StatusCode | None:
        for key, codes in self.fail.items():
            if key in task.name and codes:
                return codes.pop(0)
        if task.name in self.names:
            return grpc.StatusCode.ALREADY_EXISTS
        self.names.add(task.name)
        return None

    def batch_create_tasks(self, *, parent: str, requests: list[Any], timeout: float) -> Any:
        if not self.batch:
            raise gexc.MethodNotImplemented("BatchCreateTasks")
        self.batches.append(len(requests))
        failed = {}
        for index, request in enumerate(requests):
            code = self._outcome(request.task)
            if code is not None:
                failed[index] = SimpleNamespace(code=code.value[0], message=code.name)
        operation = SimpleNamespace(metadata=SimpleNamespace(failed_requests=failed))

        def result(timeout: float) -> Any:
            if len(failed) == len(requests):
                raise gexc.Aborted("None of the requests succeeded")
            return None

        operation.result = result
        return operation

    def create_task(self, *, parent: str, task: Any, timeout: float) -> Any:
        self.singles += 1
        code = self._outcome(task)
        if code is not None:
            raise gexc.from_grpc_status(code, code.name)
        return task


def messages(n: int, **using: Any) -> list[JobMessage]:
    job = jobs_delayed.remember.using(delay=60, **using)
    return [job.using(job_id=f"job-{i}").message(f"t{i}") for i in range(n)]


def test_tasks_go_in_batches_of_100_in_the_order_given() -> None:
    client = FakeBatchCloudTasks()
    scheduler = CloudTasksScheduler(production(), client=client)
    given = messages(250)
    results = scheduler.schedule_many(given)
    assert sorted(client.batches) == [50, 100, 100] and client.singles == 0
    assert [r.job_id for r in results] == [m.job_id for m in given]
    assert len(client.names) == 250
    scheduler.close()


def test_an_existing_task_is_success_for_a_job_of_the_same_id() -> None:
    client = FakeBatchCloudTasks()
    scheduler = CloudTasksScheduler(production(), client=client)
    scheduler.schedule_many(messages(3))
    again = scheduler.schedule_many(messages(4))  # the first three exist: a retried enqueue
    assert [r.duplicate for r in again] == [False] * 4 and len(client.names) == 4


def test_a_transient_failure_of_one_task_is_sent_again() -> None:
    client = FakeBatchCloudTasks({"job-1": [grpc.StatusCode.UNAVAILABLE]})
    scheduler = CloudTasksScheduler(production(), client=client)
    results = scheduler.schedule_many(messages(3))
    assert [r.job_id for r in results] == ["job-0", "job-1", "job-2"]
    assert client.batches == [3, 1] and len(client.names) == 3


def test_other_failures_are_listed_and_the_rest_scheduled() -> None:
    client = FakeBatchCloudTasks({"job-1": [grpc.StatusCode.INVALID_ARGUMENT]})
    scheduler = CloudTasksScheduler(production(), client=client)
    with pytest.raises(BulkEnqueueError) as caught:
        scheduler.schedule_many(messages(3))
    assert str(caught.value).startswith("1 of 3 jobs were not scheduled; the first: creating "
                                        "a task in Cloud Tasks queue ")
    assert [r.job_id for r in caught.value.enqueued] == ["job-0", "job-2"]
    [(message, error)] = caught.value.failed
    assert message.job_id == "job-1" and isinstance(error, gexc.InvalidArgument)


def test_every_request_failing_fails_every_job() -> None:
    client = FakeBatchCloudTasks({"job-": [grpc.StatusCode.PERMISSION_DENIED] * 2})
    scheduler = CloudTasksScheduler(production(), client=client)
    with pytest.raises(BulkEnqueueError, match="2 of 2 jobs were not scheduled; the first: "
                       "permission denied creating a task in"):
        scheduler.schedule_many(messages(2))


def test_without_batch_create_it_falls_back_to_create_task_for_good() -> None:
    client = FakeBatchCloudTasks(batch=False)
    scheduler = CloudTasksScheduler(production(), client=client)
    first = scheduler.schedule_many(messages(150))
    assert not scheduler.batch_create and client.singles == 150
    assert [r.job_id for r in first] == [f"job-{i}" for i in range(150)]
    scheduler.close()
