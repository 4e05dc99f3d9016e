"""Delayed jobs: Cloud Tasks holds each job until it is due, then publishes it to Pub/Sub.

A delayed job becomes an HTTP task whose request is a Pub/Sub REST publish of exactly the
message an immediate ``enqueue`` would publish (plus ``scheduled_at``)::

    POST https://pubsub.googleapis.com/v1/projects/P/topics/T:publish
    Content-Type: application/json
    Authorization: an OAuth token of PUBSUB_JOBS_CLOUD_TASKS_SERVICE_ACCOUNT, minted by Cloud Tasks
    {"messages": [{"data": "<base64>", "attributes": {...}}]}

No endpoint of the application is involved. Against the emulators the URL is
``http://$PUBSUB_EMULATOR_HOST/v1/...`` and no token is sent.

The task name derives from the job id (a hash first, as Cloud Tasks recommends, then the id
itself for people reading the queue), so an ``enqueue`` retried after a timeout meets
``AlreadyExists`` instead of scheduling the job twice. A long-wait retry (see
:class:`~pubsub_jobs.errors.Retry`) has its own name per delivery it continues (the
``rescheduled_from`` message id), so a job retried from the dead set never meets the name
of an earlier schedule.

Cancelling (:func:`cancel_task`) deletes a waiting job's task, found by the same derivation
from queue and job id (:func:`task_name`): the task of a delayed, unique or rate-limited job.
A long-wait retry's task is named for its attempt and delivery too, so it is not found by
job id and cannot be cancelled.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from google.api_core import exceptions as gexc

from pubsub_jobs.adapter import duplicate_of, result_for
from pubsub_jobs.adapters import _retry
from pubsub_jobs.adapters.cloud_tasks_batch import schedule_many
from pubsub_jobs.errors import (
    CancelError,
    ConfigurationError,
    MessageTooLarge,
    ScheduleTooFar,
    describe,
    is_transient,
)
from pubsub_jobs.message import EnqueuedJob, JobMessage, format_time, utcnow
from pubsub_jobs.outcome import PREVIOUS_ATTEMPTS, RESCHEDULED_FROM
from pubsub_jobs.queues import declared_queue
from pubsub_jobs.settings import Settings

log = logging.getLogger(__name__)

# google-cloud-tasks ships type hints and google-cloud-pubsub does not: once mypy sees the
# former it resolves the ``google.cloud`` namespace and then misses ``pubsub_v1`` in every
# module that imports it. Imported dynamically, both stay untyped alike.
tasks_v2: Any = importlib.import_module("google.cloud.tasks_v2")
_transports: Any = importlib.import_module("google.cloud.tasks_v2.services.cloud_tasks.transports")

#: Cloud Tasks' limits: how far ahead a task may be scheduled, and how large it may be.
MAX_SCHEDULE_AHEAD = timedelta(days=30)
MAX_TASK_BYTES = 1_000_000

PUBSUB_REST_ROOT = "https://pubsub.googleapis.com/v1"
PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"

_TASK_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_TASK_ID = 500


def cloud_tasks_client(settings: Settings) -> Any:
    """A Cloud Tasks client: the emulator over an insecure channel when one is set, else ADC."""
    _check_emulators(settings)
    host = settings.cloud_tasks_emulator_host
    if host:
        transport = _transports.CloudTasksGrpcTransport(channel=grpc.insecure_channel(host))
        return tasks_v2.CloudTasksClient(transport=transport)
    return tasks_v2.CloudTasksClient()


def cloud_tasks_queue_path(settings: Settings) -> str:
    """``projects/P/locations/L/queues/Q`` of the delayed-jobs queue; a clear error if unset."""
    if not settings.cloud_tasks_location:
        raise ConfigurationError(
            "delayed, unique and rate-limited jobs need a Cloud Tasks location: set "
            "PUBSUB_JOBS_CLOUD_TASKS_LOCATION "
            "(e.g. us-central1), or configure(cloud_tasks_location=...)"
        )
    path: str = tasks_v2.CloudTasksClient.queue_path(
        settings.require_project(), settings.cloud_tasks_location, settings.cloud_tasks_queue
    )
    return path


def tasks_queue_path(settings: Settings, queue: str) -> str:
    """The Cloud Tasks queue that holds queue ``queue``'s jobs while they wait: its own
    ``<prefix>Q-rate`` when the queue is declared with ``rate_limit``, else the delayed-jobs
    queue (``PUBSUB_JOBS_CLOUD_TASKS_QUEUE``). A clear error when no location is set."""
    delayed = cloud_tasks_queue_path(settings)
    declared = declared_queue(queue)
    if declared is None or declared.rate_limit is None:
        return delayed
    path: str = tasks_v2.CloudTasksClient.queue_path(
        settings.require_project(), settings.cloud_tasks_location, settings.rate_queue(queue)
    )
    return path


@dataclass(frozen=True, slots=True)
class _Target:
    """Where tasks go and how they publish: checked once, when the scheduler is built."""

    queue_path: str
    pubsub_root: str
    service_account: str | None


def _check_emulators(settings: Settings) -> None:
    """Both emulators or neither: each half alone cannot deliver a delayed job."""
    pubsub_host = settings.pubsub_emulator_host
    tasks_host = settings.cloud_tasks_emulator_host
    if pubsub_host and not tasks_host:
        raise ConfigurationError(
            f"PUBSUB_EMULATOR_HOST={pubsub_host} is set but CLOUD_TASKS_EMULATOR_HOST is not: "
            "Cloud Tasks in Google Cloud cannot reach a local Pub/Sub emulator. Start both "
            "emulators with `pubsub-jobs emulator start` and export what it prints"
        )
    if tasks_host and not pubsub_host:
        raise ConfigurationError(
            f"CLOUD_TASKS_EMULATOR_HOST={tasks_host} is set but PUBSUB_EMULATOR_HOST is not: "
            "the Cloud Tasks emulator cannot get OAuth tokens to publish to Google's Pub/Sub. "
            "Use both emulators, or neither"
        )


def _target(settings: Settings) -> _Target:
    queue_path = cloud_tasks_queue_path(settings)
    _check_emulators(settings)
    pubsub_host = settings.pubsub_emulator_host
    if pubsub_host:
        return _Target(queue_path, f"http://{pubsub_host}/v1", None)
    if not settings.cloud_tasks_service_account:
        raise ConfigurationError(
            "delayed jobs need a service account whose OAuth token Cloud Tasks uses to publish "
            "them when due: set PUBSUB_JOBS_CLOUD_TASKS_SERVICE_ACCOUNT (an email, e.g. "
            "jobs-delayed@PROJECT.iam.gserviceaccount.com, with roles/pubsub.publisher on the "
            "queues' topics), or configure(cloud_tasks_service_account=...)"
        )
    return _Target(queue_path, PUBSUB_REST_ROOT, settings.cloud_tasks_service_account)


def task_id(topic_path: str, message: JobMessage) -> str:
    """The task id of a delayed job: a hash of topic, job id, attempt and the delivery it
    continues, then the job id.

    The same job scheduled again (an enqueue retried after a timeout, a redelivered message
    rescheduled again) gets the same id; a long-wait retry (attributes ``previous_attempts``
    and ``rescheduled_from``) gets a new one per delivery, never an earlier schedule's.
    """
    attempt = message.attributes.get(PREVIOUS_ATTEMPTS, "")
    origin = message.attributes.get(RESCHEDULED_FROM, "")
    key = "\0".join((topic_path, message.job_id, attempt, origin)).encode()
    digest = hashlib.sha256(key).hexdigest()[:16]
    readable = _TASK_ID_UNSAFE.sub("_", message.job_id)
    suffix = f"-r{attempt}" if attempt else ""
    room = _MAX_TASK_ID - len(digest) - 1 - len(suffix)
    return f"{digest}-{readable[:room]}{suffix}"


def task_name(settings: Settings, queue: str, job_id: str) -> str:
    """The full name of the task that holds job ``job_id`` of ``queue`` while it waits: in
    :func:`tasks_queue_path`, with the :func:`task_id` the job was scheduled under (a fresh
    job's: a long-wait retry's task is named for its attempt too, and is not this one)."""
    message = JobMessage(job_name="", queue=queue, args=[], kwargs={}, job_id=job_id)
    return (f"{tasks_queue_path(settings, queue)}/tasks/"
            f"{task_id(settings.topic_path(queue), message)}")


def cancel_task(settings: Settings, client: Any, queue: str, job_id: str) -> bool:
    """Delete the task of job ``job_id`` of ``queue`` (:func:`task_name`) under the adapters'
    retry policy: True when it was deleted (the job will not run), False when no such task
    waits (it already left Cloud Tasks for Pub/Sub, where it will run or ran, or no such job
    was enqueued delayed, unique or rate-limited), said at INFO.

    A missing Cloud Tasks queue raises :class:`~pubsub_jobs.errors.ConfigurationError`, any
    other error :class:`~pubsub_jobs.errors.CancelError`, each saying what to do.
    """
    name = task_name(settings, queue, job_id)
    queue_path = name.rsplit("/tasks/", 1)[0]

    def delete() -> None:
        client.delete_task(name=name, timeout=settings.publish_timeout)

    try:
        _retry.call(delete, attempts=settings.publish_attempts, what=f"delete_task {name}")
    except gexc.NotFound:
        _check_queue(client, queue_path, settings)
        log.info(
            "job %s of queue %r was not cancelled: no task %s waits in Cloud Tasks. It already "
            "left Cloud Tasks (published to Pub/Sub, where it will run, or ran), or no such job "
            "was enqueued as a delayed, unique or rate-limited job", job_id, queue, name,
        )
        return False
    except Exception as exc:
        raise _cancel_error(exc, name, queue_path, job_id, settings) from exc
    log.info("cancelled job %s of queue %r: deleted task %s", job_id, queue, name)
    return True


def _check_queue(client: Any, queue_path: str, settings: Settings) -> None:
    """After a task was not found: a Cloud Tasks queue that does not exist is a setting to fix,
    not a job that left. Any other answer (a role without ``cloudtasks.queues.get``) says
    nothing more, and the job counts as gone."""
    try:
        client.get_queue(name=queue_path, timeout=settings.publish_timeout)
    except gexc.NotFound:
        raise ConfigurationError(
            f"Cloud Tasks queue {queue_path} does not exist, so no job waits in it: check "
            "PUBSUB_JOBS_PROJECT_ID, PUBSUB_JOBS_CLOUD_TASKS_LOCATION, "
            "PUBSUB_JOBS_CLOUD_TASKS_QUEUE and PUBSUB_JOBS_PREFIX (a rate-limited queue's is "
            "<prefix>Q-rate), or create it with `pubsub-jobs bootstrap` or Terraform"
        ) from None
    except Exception as exc:  # only a missing queue changes the answer
        log.debug("get_queue %s after a missing task: %s", queue_path, describe(exc))


def _cancel_error(
    exc: BaseException, name: str, queue_path: str, job_id: str, settings: Settings
) -> CancelError:
    """The error a cancel raises when ``exc`` ended its calls: what failed, what to do."""
    if isinstance(exc, gexc.PermissionDenied):
        return CancelError(
            f"permission denied deleting task {name} ({describe(exc)}): grant "
            f"roles/cloudtasks.taskDeleter on Cloud Tasks queue {queue_path} to the identity "
            f"that cancels. Job {job_id} was not cancelled."
        )
    tries = (f" after retries ({settings.publish_attempts} attempts)"
             if settings.publish_attempts > 1 and is_transient(exc) else "")
    return CancelError(
        f"deleting task {name} failed{tries} ({describe(exc)}); job {job_id} was not "
        "cancelled and may still run: try again later"
    )


class CloudTasksScheduler:
    """Creates one HTTP task per delayed, unique or rate-limited job, in the Cloud Tasks
    queue of the job's queue (:func:`tasks_queue_path`: its ``-rate`` queue when it is
    rate-limited, else the delayed-jobs queue); the client is created on first use and
    shared. :meth:`schedule_many` creates many with ``BatchCreateTasks``.

    Settings are checked when the scheduler is built (on the first delayed ``enqueue``): a
    missing one raises :class:`~pubsub_jobs.errors.ConfigurationError` naming it.
    """

    def __init__(
        self, settings: Settings, *, client: Any = None
    ) -> None:
        self.settings = settings
        self._target = _target(settings)
        self._client = client
        self._lock = threading.Lock()
        self._paths: dict[tuple[str, float | None], str] = {}
        #: False once the server answered BatchCreateTasks with UNIMPLEMENTED.
        self.batch_create = True
        self._pools: dict[str, Any] = {}

    @property
    def queue_path(self) -> str:
        """The delayed-jobs queue (``PUBSUB_JOBS_CLOUD_TASKS_QUEUE``)."""
        return self._target.queue_path

    def path_for(self, queue: str) -> str:
        """The Cloud Tasks queue of ``queue``'s jobs (:func:`tasks_queue_path`), cached per
        queue and rate limit (a declaration made later is seen)."""
        declared = declared_queue(queue)
        key = (queue, None if declared is None else declared.rate_limit)
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = tasks_queue_path(self.settings, queue)
        return path

    @property
    def client(self) -> Any:
        """The shared ``CloudTasksClient``, created on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = cloud_tasks_client(self.settings)
        return self._client

    def build_task(self, message: JobMessage) -> Any:
        """The task that publishes ``message`` when due; refuses what Cloud Tasks would refuse."""
        due = message.scheduled_at or utcnow()
        if due - utcnow() > MAX_SCHEDULE_AHEAD:
            raise ScheduleTooFar(
                f"job {message.job_name!r} is due at {format_time(due)}, more than "
                f"{MAX_SCHEDULE_AHEAD.days} days ahead, which is as far as Cloud Tasks holds a "
                "task. Schedule it closer (for instance, a job that re-enqueues itself), or "
                "keep far-off work in your database and enqueue it from a periodic job."
            )
        data, attributes = message.encode()
        topic_path = self.settings.topic_path(message.queue)
        published: dict[str, Any] = {"data": base64.b64encode(data).decode("ascii"),
                                     "attributes": attributes}
        if message.ordering_key is not None:  # the key applies when the job is published
            published["orderingKey"] = message.ordering_key
        body = json.dumps(
            {"messages": [published]},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        request = tasks_v2.HttpRequest(
            url=f"{self._target.pubsub_root}/{topic_path}:publish",
            http_method=tasks_v2.HttpMethod.POST,
            headers={"Content-Type": "application/json"},
            body=body,
        )
        if self._target.service_account:
            request.oauth_token = tasks_v2.OAuthToken(
                service_account_email=self._target.service_account, scope=PUBSUB_SCOPE
            )
        task = tasks_v2.Task(
            name=f"{self.path_for(message.queue)}/tasks/{task_id(topic_path, message)}",
            schedule_time=due,
            http_request=request,
        )
        size = len(tasks_v2.Task.serialize(task))
        if size > MAX_TASK_BYTES:
            raise MessageTooLarge(
                f"delayed job {message.job_name!r} makes a Cloud Tasks task of {size:,} bytes; "
                f"a task holds at most {MAX_TASK_BYTES:,} (about 740 kB of encoded arguments, "
                "as they travel base64-encoded). Store large payloads elsewhere (Cloud "
                "Storage, a database) and pass their key or URI instead."
            )
        return task

    def schedule(self, message: JobMessage) -> EnqueuedJob:
        """Create the task under the adapters' retry policy. An existing task of the same
        name is an earlier attempt that did succeed (success), or for a unique job the
        first job of its window (``duplicate=True``)."""
        task = self.build_task(message)
        settings = self.settings
        parent = task.name.rsplit("/tasks/", 1)[0]

        def create() -> None:
            self.client.create_task(parent=parent, task=task, timeout=settings.publish_timeout)

        try:
            _retry.call(create, attempts=settings.publish_attempts,
                        what=f"create_task in {parent}")
        except gexc.AlreadyExists:
            return self.existing(message, task.name)
        except Exception as exc:
            raise self.enqueue_error(exc, parent) from exc
        return result_for(message, None)

    def existing(self, message: JobMessage, name: str) -> EnqueuedJob:
        """What a create that met ``AlreadyExists`` returns (see :meth:`schedule`)."""
        if message.unique is not None:
            return duplicate_of(message, f"Cloud Tasks has task {name}")
        log.info("job %s is already scheduled as %s", message.job_id, name)
        return result_for(message, None)

    def enqueue_error(self, exc: BaseException, parent: str) -> Exception:
        return _retry.enqueue_error(
            exc, _retry.cloud_tasks_queue(parent),
            attempts=self.settings.publish_attempts, timeout=self.settings.publish_timeout,
        )

    def schedule_many(self, messages: Sequence[JobMessage]) -> list[EnqueuedJob]:
        """Create many tasks: ``BatchCreateTasks`` of up to 100, a few requests in flight;
        concurrent ``CreateTask`` calls where the server does not offer it. Returns in the
        order given, or raises :class:`~pubsub_jobs.errors.BulkEnqueueError` listing the
        jobs that were not scheduled (see :mod:`pubsub_jobs.adapters.cloud_tasks_batch`)."""
        return schedule_many(self, messages)

    def pool(self, name: str, size: int) -> Any:
        """This scheduler's thread pool ``name`` (made on first use; shut down by close)."""
        pool = self._pools.get(name)
        if pool is None:
            with self._lock:
                pool = self._pools.get(name)
                if pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    pool = self._pools[name] = ThreadPoolExecutor(
                        size, thread_name_prefix=f"pubsub-jobs-tasks-{name}")
        return pool

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=True)
        if client is not None:
            client.transport.close()
