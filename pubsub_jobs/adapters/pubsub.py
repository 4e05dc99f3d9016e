"""The production adapter: publish jobs to Pub/Sub, hold delayed ones in Cloud Tasks."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from pubsub_jobs._clients import publisher_client
from pubsub_jobs.adapters.base import Adapter, EnqueuedJob, result_for
from pubsub_jobs.errors import (
    BulkEnqueueError,
    EnqueueError,
    TopicNotFound,
    describe,
    is_transient,
)
from pubsub_jobs.message import JobMessage
from pubsub_jobs.middleware import Middleware, MiddlewareChain, load_middleware
from pubsub_jobs.settings import Settings, get_settings

#: Batching for bulk publishes; a lone enqueue is flushed as soon as it is alone.
DEFAULT_BATCH = pubsub_v1.types.BatchSettings(
    max_messages=1000, max_bytes=9 * 1000 * 1000, max_latency=0.005
)


class PubSubAdapter(Adapter):
    """Publishes each job to its queue's topic and waits for Pub/Sub's confirmation.

    The publisher client is created on first use and shared by every thread. Transient API
    errors are retried (bounded, exponential, with jitter); a missing topic or a permission
    error fails at once with a message that says what to do.
    """

    supports_bulk = True
    supports_delay = True
    _middleware: MiddlewareChain | None = None

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        middleware: Sequence[Middleware] | None = None,
        publisher: pubsub_v1.PublisherClient | None = None,
        batch_settings: pubsub_v1.types.BatchSettings = DEFAULT_BATCH,
    ) -> None:
        super().__init__(middleware or ())
        if middleware is None:
            self._middleware = None  # the settings' middleware, loaded on first use
        self._settings = settings
        self._publisher = publisher
        self._batch_settings = batch_settings
        self._lock = threading.Lock()
        self._topic_paths: dict[str, str] = {}
        self._scheduler: Any = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = get_settings()
        return self._settings

    @property
    def middleware(self) -> MiddlewareChain:
        """The enqueue middleware: those given, else the settings' (``PUBSUB_JOBS_MIDDLEWARE``),
        imported on first use so that building an adapter reads and imports nothing."""
        chain = self._middleware
        if chain is None:
            chain = self._middleware = MiddlewareChain(load_middleware(self.settings))
        return chain

    @middleware.setter
    def middleware(self, chain: MiddlewareChain) -> None:
        self._middleware = chain

    @property
    def publisher(self) -> pubsub_v1.PublisherClient:
        """The shared publisher client, created on first use."""
        if self._publisher is None:
            with self._lock:
                if self._publisher is None:
                    self._publisher = publisher_client(
                        self.settings, batch_settings=self._batch_settings
                    )
        return self._publisher

    def topic_path(self, queue: str) -> str:
        path = self._topic_paths.get(queue)
        if path is None:
            path = self._topic_paths[queue] = self.settings.topic_path(queue)
        return path

    def publish_raw(
        self, topic_path: str, data: bytes, attributes: Mapping[str, str]
    ) -> Future[str]:
        """Publish one message as it is; the returned future gives the message id."""
        future: Future[str] = self.publisher.publish(topic_path, data, **attributes)
        return future

    def publish(self, message: JobMessage) -> EnqueuedJob:
        data, attributes = message.encode()
        topic = self.topic_path(message.queue)
        timeout = self.settings.publish_timeout

        def attempt() -> str:
            return self.publish_raw(topic, data, attributes).result(timeout=timeout)

        try:
            message_id = self._retrying()(attempt)
        except Exception as exc:
            raise self._enqueue_error(exc, topic, message.queue) from exc
        return result_for(message, message_id)

    def publish_many(self, messages: Sequence[JobMessage]) -> list[EnqueuedJob]:
        """Publish in batches; return when every message is confirmed.

        Failed messages are published again while their errors are transient; those that
        still fail are reported together in a :class:`BulkEnqueueError`.
        """
        encoded = [(m, *m.encode()) for m in messages]
        timeout = self.settings.publish_timeout
        done: dict[str, EnqueuedJob] = {}
        pending = encoded
        failures: list[tuple[JobMessage, BaseException]] = []
        for attempt in range(1, self.settings.publish_attempts + 1):
            futures = [
                (item, self.publish_raw(self.topic_path(item[0].queue), item[1], item[2]))
                for item in pending
            ]
            retry: list[tuple[JobMessage, bytes, dict[str, str]]] = []
            failures = []
            for item, future in futures:
                try:
                    done[item[0].job_id] = result_for(item[0], future.result(timeout=timeout))
                except Exception as exc:
                    failures.append((item[0], exc))
                    if is_transient(exc):
                        retry.append(item)
            if not retry or len(retry) < len(failures):
                break
            pending = retry
            if attempt < self.settings.publish_attempts:
                threading.Event().wait(min(10.0, 0.25 * 2**attempt))
        if failures:
            first_msg, first_exc = failures[0]
            error = self._enqueue_error(
                first_exc, self.topic_path(first_msg.queue), first_msg.queue
            )
            raise BulkEnqueueError(
                f"{len(failures)} of {len(messages)} jobs were not enqueued; the first: {error}",
                enqueued=[done[m.job_id] for m in messages if m.job_id in done],
                failed=failures,
            )
        return [done[m.job_id] for m in messages]

    def schedule(self, message: JobMessage) -> EnqueuedJob:
        from pubsub_jobs.adapters.cloud_tasks import CloudTasksScheduler

        if self._scheduler is None:
            with self._lock:
                if self._scheduler is None:
                    self._scheduler = CloudTasksScheduler(self.settings)
        scheduled: EnqueuedJob = self._scheduler.schedule(message)
        return scheduled

    def close(self) -> None:
        with self._lock:
            publisher, self._publisher = self._publisher, None
            scheduler, self._scheduler = self._scheduler, None
        if publisher is not None:
            publisher.stop()
        if scheduler is not None:
            scheduler.close()

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self.settings.publish_attempts),
            wait=wait_random_exponential(multiplier=0.25, max=10),
            reraise=True,
            before_sleep=_log_retry,
        )

    def _enqueue_error(self, exc: BaseException, topic: str, queue: str) -> EnqueueError:
        if isinstance(exc, gexc.NotFound):
            return TopicNotFound(
                f"topic {topic} does not exist, so the job was not enqueued: create it with "
                f"`pubsub-jobs bootstrap --queue {queue}` (or Terraform), or check "
                "PUBSUB_JOBS_PROJECT_ID and PUBSUB_JOBS_PREFIX"
            )
        if isinstance(exc, gexc.PermissionDenied):
            return EnqueueError(
                f"permission denied publishing to {topic}: grant the application's service "
                "account roles/pubsub.publisher on the topic. The job was not enqueued."
            )
        if isinstance(exc, TimeoutError):
            return EnqueueError(
                f"Pub/Sub did not confirm the publish to {topic} within "
                f"{self.settings.publish_timeout:g} s; treat the job as not enqueued and try "
                "again (a job_id given with using(job_id=...) keeps the retry recognisable)"
            )
        return EnqueueError(
            f"publishing to {topic} failed ({describe(exc)}); the job was not enqueued"
            + (", after retries" if is_transient(exc) else "")
        )


def _log_retry(state: RetryCallState) -> None:
    import logging

    exc = state.outcome.exception() if state.outcome else None
    logging.getLogger("pubsub_jobs.adapters").warning(
        "publish attempt %d failed (%s); retrying", state.attempt_number, exc
    )
