"""The production adapter: publish jobs to Pub/Sub, hold delayed ones in Cloud Tasks."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.publisher.exceptions import PublishError
from google.pubsub_v1 import PublisherClient as GapicPublisherClient
from google.pubsub_v1.types import PublishRequest, PubsubMessage

from pubsub_jobs.adapter import Adapter, is_delayed, result_for
from pubsub_jobs.adapters import _retry
from pubsub_jobs.adapters._ordered_publish import Item, publish_ordered
from pubsub_jobs.adapters.clients import publisher_client
from pubsub_jobs.errors import BulkEnqueueError, EnqueueError, is_transient
from pubsub_jobs.message import EnqueuedJob, JobMessage
from pubsub_jobs.middleware import Middleware, MiddlewareChain, load_middleware
from pubsub_jobs.queues import declared_queue
from pubsub_jobs.settings import Settings, get_settings, naming_hint, project_resource_ids

#: The most messages and bytes in one publish request of a bulk enqueue (Pub/Sub takes 1,000
#: and 10 MB); ``max_latency`` is the client's batching of :meth:`PubSubAdapter.publish_raw`.
DEFAULT_BATCH = pubsub_v1.types.BatchSettings(
    max_messages=1000, max_bytes=9 * 1000 * 1000, max_latency=0.005
)

#: Publish requests of one bulk enqueue in flight at once.
BULK_REQUESTS_IN_FLIGHT = 4

_PubsubMessagePb: Any = PubsubMessage.pb()
_PublishRequestPb: Any = PublishRequest.pb()

#: A message ready to send: the job, its topic, its data and attributes.
_Item = Item


class PubSubAdapter(Adapter):
    """Publishes each job to its queue's topic and waits for Pub/Sub's confirmation.

    The publisher client is created on first use and shared by every thread. Transient API
    errors are retried under the adapters' one policy (``adapters/_retry.py``: bounded,
    exponential, with jitter); a missing topic or a permission error fails at once with a
    message that says what to do.
    """

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
        self.batch_settings = batch_settings
        self._lock = threading.Lock()
        self._topic_paths: dict[str, str] = {}
        self._scheduler: Any = None
        self._tasks_client: Any = None
        self._pool: ThreadPoolExecutor | None = None

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
                        self.settings, batch_settings=self.batch_settings
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

    def publish_request(self, topic_path: str, messages: Sequence[Any]) -> list[str]:
        """One Publish request of protobuf ``PubsubMessage``s; returns their message ids.

        It calls the generated client's ``publish`` on the shared client (same channel)
        rather than the batching ``PublisherClient.publish``: a lone enqueue then goes out at
        once instead of after the batch timer, and a bulk enqueue skips the per-message
        bookkeeping that costs more than the request (see ``bench/``). One attempt, bounded
        by ``publish_timeout``: :meth:`publish` and :meth:`publish_many` retry transient
        errors under the adapters' policy (``publish_attempts``), so no retry runs on after
        they gave up.
        """
        request = PublishRequest.wrap(_PublishRequestPb(topic=topic_path, messages=messages))
        response = GapicPublisherClient.publish(  # retried by our callers, not inside
            self.publisher, request=request, retry=None, timeout=self.settings.publish_timeout
        )
        ids = list(response.message_ids)
        if len(ids) != len(messages):
            raise PublishError(f"Pub/Sub confirmed {len(ids)} of {len(messages)} messages")
        return ids

    def publish(self, message: JobMessage) -> EnqueuedJob:
        """Publish to the queue's topic; a job of a ``rate_limit`` queue goes through its
        Cloud Tasks queue instead (``message_id`` is then None: Cloud Tasks publishes it)."""
        if _rate_limited(message.queue):
            return self.schedule(message)
        data, attributes = message.encode()
        topic = self.topic_path(message.queue)
        if message.ordering_key is None:
            pb = _PubsubMessagePb(data=data, attributes=attributes)
        else:  # a failed publish raises: the caller's next enqueue of the key comes after
            pb = _PubsubMessagePb(data=data, attributes=attributes,
                                  ordering_key=message.ordering_key)
        try:  # the first attempt pays no retry bookkeeping (see _retry.call)
            message_id = _retry.call(
                lambda: self.publish_request(topic, [pb])[0],
                attempts=self.settings.publish_attempts,
                what=f"publish to {topic}",
            )
        except Exception as exc:
            raise self._enqueue_error(exc, topic, message.queue) from exc
        return result_for(message, message_id)

    def publish_many(self, messages: Sequence[JobMessage]) -> list[EnqueuedJob]:
        """Publish in batches; return when every message is confirmed.

        Each round under the adapters' retry policy sends again only the messages whose
        request failed transiently; a terminal error (a missing topic) fails its messages at
        once. Those that still fail are reported together in a :class:`BulkEnqueueError`.
        Jobs of a ``rate_limit`` queue go to :meth:`schedule_many` instead.
        Jobs with an ordering key go apart, in order (:meth:`_publish_ordered`).
        """
        if any(_rate_limited(m.queue) for m in messages):
            return self._publish_split(messages)
        pending: list[_Item] = []
        ordered: list[_Item] = []
        for m in messages:  # every message is encoded (and checked) before any is sent
            (pending if m.ordering_key is None else ordered).append(
                (m, self.topic_path(m.queue), *m.encode()))
        done: dict[str, EnqueuedJob] = {}
        errors: dict[str, BaseException] = {}  # job id: the error its last request met
        raised: BaseException | None = None
        if ordered:
            publish_ordered(self, ordered, done, errors)

        def send_round() -> None:
            nonlocal pending, raised
            again: list[_Item] = []
            transient: BaseException | None = None
            for batch, outcome in self._send_batches(pending):
                if isinstance(outcome, BaseException):
                    for item in batch:
                        errors[item[0].job_id] = outcome
                    if is_transient(outcome):
                        again += batch
                        transient = transient or outcome
                    continue
                for item, message_id in zip(batch, outcome, strict=True):
                    done[item[0].job_id] = result_for(item[0], message_id)
                    errors.pop(item[0].job_id, None)
            pending = again
            if transient is not None:
                raised = transient
                raise transient  # the policy decides whether the rest is sent again

        try:
            if pending:
                _retry.call(send_round, attempts=self.settings.publish_attempts,
                            what=f"bulk publish of {len(messages)} jobs")
        except Exception as exc:
            if exc is not raised:  # not a request's error (those are in ``errors``): a bug
                raise
        failures = [(m, errors[m.job_id]) for m in messages if m.job_id in errors]
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

    def _send_batches(
        self, items: list[_Item]
    ) -> Iterator[tuple[list[_Item], list[str] | BaseException]]:
        """Send ``items`` in requests of one topic each, within the batch limits, and yield
        each request's items with their message ids, or the error.

        A request goes to the thread pool as soon as it is full, so building the next one
        overlaps sending; a bulk that fits one request is sent from this thread.
        """
        max_messages = self.batch_settings.max_messages
        max_bytes = self.batch_settings.max_bytes
        sent: list[tuple[list[_Item], Future[list[str] | BaseException]]] = []
        filling: dict[str, tuple[list[_Item], list[Any], list[int]]] = {}
        for item in items:
            topic = item[1]
            pb = _PubsubMessagePb(data=item[2], attributes=item[3])
            size = pb.ByteSize() + 8  # and its framing in the request
            batch = filling.get(topic)
            if batch is not None and batch[2][0] + size > max_bytes:
                sent.append((batch[0], self._executor().submit(self._try_send, topic, batch[1])))
                batch = None
            if batch is None:
                batch = filling[topic] = ([], [], [0])
            batch[0].append(item)
            batch[1].append(pb)
            batch[2][0] += size
            if len(batch[0]) >= max_messages:
                sent.append((batch[0], self._executor().submit(self._try_send, topic, batch[1])))
                del filling[topic]
        if not sent and len(filling) == 1:
            [(topic, (batch_items, pbs, _))] = filling.items()
            yield batch_items, self._try_send(topic, pbs)
            return
        for topic, (batch_items, pbs, _) in filling.items():
            sent.append((batch_items, self._executor().submit(self._try_send, topic, pbs)))
        for batch_items, future in sent:
            yield batch_items, future.result()

    def _try_send(self, topic: str, pbs: list[Any]) -> list[str] | BaseException:
        try:
            return self.publish_request(topic, pbs)
        except Exception as exc:
            return exc

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        BULK_REQUESTS_IN_FLIGHT, thread_name_prefix="pubsub-jobs-publish"
                    )
        return self._pool

    def enqueue_many(self, messages: Sequence[JobMessage]) -> list[EnqueuedJob]:
        """As :meth:`Adapter.enqueue_many`; when some jobs go through Cloud Tasks, its
        settings are checked first, so a missing one publishes nothing."""
        if any(m.unique is not None or _rate_limited(m.queue) or is_delayed(m)
               for m in messages):
            self.scheduler()
        return super().enqueue_many(messages)

    def _publish_split(self, messages: Sequence[JobMessage]) -> list[EnqueuedJob]:
        """:meth:`publish_many` of jobs some of which go through Cloud Tasks (rate-limited
        queues): the rest to Pub/Sub, then those; the results in the order given."""
        self.scheduler()  # its settings checked before anything is published
        held = [_rate_limited(m.queue) for m in messages]
        direct = [m for m, h in zip(messages, held, strict=True) if not h]
        direct_error: BulkEnqueueError | None = None
        try:
            published = self.publish_many(direct) if direct else []
        except BulkEnqueueError as exc:  # the rate-limited ones are sent all the same
            direct_error, published = exc, list(exc.enqueued)
        try:
            scheduled = self.schedule_many(
                [m for m, h in zip(messages, held, strict=True) if h])
        except BulkEnqueueError as exc:
            if direct_error is None:
                exc.enqueued = published + exc.enqueued
                raise
            direct_error.enqueued += exc.enqueued
            direct_error.failed += exc.failed
            raise direct_error from None
        if direct_error is not None:
            direct_error.enqueued += scheduled
            raise direct_error
        sent, kept = iter(published), iter(scheduled)
        return [next(kept) if h else next(sent) for h in held]

    def scheduler(self) -> Any:
        """The shared :class:`~pubsub_jobs.adapters.cloud_tasks.CloudTasksScheduler`, built
        (and the Cloud Tasks settings checked) on first use."""
        from pubsub_jobs.adapters.cloud_tasks import CloudTasksScheduler

        if self._scheduler is None:
            with self._lock:
                if self._scheduler is None:
                    self._scheduler = CloudTasksScheduler(self.settings)
        return self._scheduler

    def schedule(self, message: JobMessage) -> EnqueuedJob:
        scheduled: EnqueuedJob = self.scheduler().schedule(message)
        return scheduled

    def schedule_many(self, messages: Sequence[JobMessage]) -> list[EnqueuedJob]:
        """Create the jobs' tasks with ``BatchCreateTasks`` (see ``cloud_tasks_batch``)."""
        scheduled: list[EnqueuedJob] = self.scheduler().schedule_many(messages)
        return scheduled

    def cancel(self, job_id: str, queue: str) -> bool:
        """Delete the job's Cloud Tasks task (see
        :func:`~pubsub_jobs.adapters.cloud_tasks.cancel_task`): True when it was cancelled,
        False when it had already left for Pub/Sub (it will run, or ran) or never waited."""
        from pubsub_jobs.adapters.cloud_tasks import cancel_task, cloud_tasks_client, task_name

        task_name(self.settings, queue, job_id)  # a missing setting, before any client
        if self._tasks_client is None:
            with self._lock:
                if self._tasks_client is None:
                    self._tasks_client = cloud_tasks_client(self.settings)
        return cancel_task(self.settings, self._tasks_client, queue, job_id)

    def close(self) -> None:
        with self._lock:
            publisher, self._publisher = self._publisher, None
            scheduler, self._scheduler = self._scheduler, None
            tasks_client, self._tasks_client = self._tasks_client, None
            pool, self._pool = self._pool, None
        if tasks_client is not None:
            tasks_client.transport.close()
        if pool is not None:
            pool.shutdown(wait=True)
        if publisher is not None:
            publisher.stop()
        if scheduler is not None:
            scheduler.close()

    def _enqueue_error(self, exc: BaseException, topic: str, queue: str) -> EnqueueError:
        naming = self._naming_hint(queue) if isinstance(exc, gexc.NotFound) else ""
        return _retry.enqueue_error(
            exc,
            _retry.pubsub_topic(topic, queue, naming),
            attempts=self.settings.publish_attempts,
            timeout=self.settings.publish_timeout,
        )

    def _naming_hint(self, queue: str) -> str:
        """For a missing topic: this process's naming settings, and the queue's topic under
        another prefix if the project has one (the project's topics are listed for that)."""
        names = project_resource_ids(self.settings, lambda project: self.publisher.list_topics(
            request={"project": project}, timeout=5.0))
        return naming_hint(self.settings, queue, names)


def _rate_limited(queue: str) -> bool:
    """Whether ``queue`` is declared with ``rate_limit``: its jobs go through Cloud Tasks."""
    declared = declared_queue(queue)
    return declared is not None and declared.rate_limit is not None
