"""The gRPC glue: ``google.cloud.tasks.v2.CloudTasks`` methods on the store, with the
official ``google-cloud-tasks`` types, and ``google.longrunning.Operations/GetOperation``
for the batch calls' operations (answered done at once).

Served: CreateQueue, GetQueue, ListQueues, UpdateQueue, DeleteQueue, PauseQueue,
ResumeQueue, PurgeQueue, CreateTask, BatchCreateTasks, GetTask, ListTasks, DeleteTask,
BatchDeleteTasks, RunTask. Any other method (IAM, CMEK, locations) answers UNIMPLEMENTED.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc

from pubsub_jobs.emulator.tasks.names import ApiError, check_queue_name
from pubsub_jobs.emulator.tasks.store import TaskStore

__all__ = ["SERVICE", "handlers"]

logger = logging.getLogger(__name__)

tasks_v2: Any = importlib.import_module("google.cloud.tasks_v2")
_empty_pb2: Any = importlib.import_module("google.protobuf.empty_pb2")
_any_pb2: Any = importlib.import_module("google.protobuf.any_pb2")
_operations_pb2: Any = importlib.import_module("google.longrunning.operations_pb2")
_status_pb2: Any = importlib.import_module("google.rpc.status_pb2")

SERVICE = "google.cloud.tasks.v2.CloudTasks"
MAX_BATCH_CREATE = 100
MAX_BATCH_DELETE = 1000
_PAGE = 1000
_STATE_FILTER = re.compile(r"\s*state\s*[:=]\s*\"?(\w+)\"?\s*")


def _page(items: list[Any], size: int, token: str) -> tuple[list[Any], str]:
    """One page of ``items`` and the token of the next ('' after the last)."""
    try:
        start = int(token or 0)
    except ValueError:
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid page_token {token!r}") from None
    if size < 0:
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "page_size must not be negative")
    end = start + min(size or _PAGE, _PAGE)
    return items[start:end], str(end) if end < len(items) else ""


class _Api:
    """The methods, each taking a request and answering a response message."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self._operations: dict[str, Any] = {}
        self._lock = threading.Lock()

    def delete_queue(self, request: Any) -> Any:
        self.store.delete_queue(request.name)
        return _empty_pb2.Empty()

    def delete_task(self, request: Any) -> Any:
        self.store.delete_task(request.name)
        return _empty_pb2.Empty()

    def list_queues(self, request: Any) -> Any:
        state = None
        if request.filter:
            match = _STATE_FILTER.fullmatch(request.filter)
            if match is None or match[1] not in tasks_v2.Queue.State.__members__:
                raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Unsupported filter {request.filter!r} (only state: STATE)")
            state = tasks_v2.Queue.State[match[1]]
        queues, token = _page(self.store.list_queues(request.parent, state),
                              request.page_size, request.page_token)
        return tasks_v2.ListQueuesResponse(queues=queues, next_page_token=token)

    def list_tasks(self, request: Any) -> Any:
        tasks, token = _page(self.store.list_tasks(request.parent, request.response_view),
                             request.page_size, request.page_token)
        return tasks_v2.ListTasksResponse(tasks=tasks, next_page_token=token)

    def update_queue(self, request: Any) -> Any:
        paths = list(request.update_mask.paths) if "update_mask" in request else []
        return self.store.update_queue(request.queue, paths)

    def batch_create(self, request: Any) -> Any:
        check_queue_name(request.parent)
        if not 0 < len(request.requests) <= MAX_BATCH_CREATE:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"A batch creates 1 to {MAX_BATCH_CREATE} tasks "
                           f"(got {len(request.requests)})")
        if any(r.parent != request.parent for r in request.requests):
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                           "Every CreateTaskRequest of a batch must have the batch's parent")
        self.store.get_queue(request.parent)  # NOT_FOUND for the whole batch
        created, failed = [], {}
        for index, one in enumerate(request.requests):
            try:
                created.append(self.store.create_task(one.parent, one.task, one.response_view))
            except ApiError as exc:
                failed[index] = _status_pb2.Status(code=exc.code.value[0], message=exc.message)
        response = tasks_v2.BatchCreateTasksResponse(tasks=created)
        return self._operation(request, tasks_v2.BatchCreateTasksMetadata, failed,
                               tasks_v2.BatchCreateTasksResponse.pb(response))

    def batch_delete(self, request: Any) -> Any:
        check_queue_name(request.parent)
        if not 0 < len(request.names) <= MAX_BATCH_DELETE:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"A batch deletes 1 to {MAX_BATCH_DELETE} tasks "
                           f"(got {len(request.names)})")
        failed = {}
        for index, name in enumerate(request.names):
            try:
                if not name.startswith(f"{request.parent}/tasks/"):
                    raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Task {name} is not in the queue {request.parent}")
                self.store.delete_task(name)
            except ApiError as exc:
                failed[index] = _status_pb2.Status(code=exc.code.value[0], message=exc.message)
        return self._operation(request, tasks_v2.BatchDeleteTasksMetadata, failed,
                               _empty_pb2.Empty())

    def _operation(self, request: Any, metadata_type: Any, failed: dict[int, Any],
                   response: Any) -> Any:
        """A done operation: ``response`` (or an ABORTED error when every request failed),
        its metadata's state and failed requests. The same ``request_id`` answers the same
        operation again."""
        location = request.parent.rsplit("/queues/", 1)[0]
        with self._lock:
            if request.request_id and request.request_id in self._operations:
                return self._operations[request.request_id]
            now = datetime.now(UTC)
            total = len(getattr(request, "requests", None) or getattr(request, "names", []))
            state = metadata_type.State
            metadata = metadata_type(
                start_time=now, end_time=now, failed_requests=failed,
                state=(state.SUCCEEDED if not failed else
                       state.FAILED if len(failed) == total else state.PARTIALLY_SUCCEEDED),
            )
            packed_metadata = _any_pb2.Any()
            packed_metadata.Pack(metadata_type.pb(metadata))
            operation = _operations_pb2.Operation(
                name=f"{location}/operations/{request.request_id or uuid.uuid4().hex}",
                done=True, metadata=packed_metadata,
            )
            if failed and len(failed) == total:
                operation.error.CopyFrom(_status_pb2.Status(
                    code=grpc.StatusCode.ABORTED.value[0],
                    message="None of the requests succeeded, refer to failed_requests"))
            else:
                operation.response.Pack(response)
            self._operations[operation.name] = operation
            if request.request_id:
                self._operations[request.request_id] = operation
            return operation

    def get_operation(self, request: Any) -> Any:
        with self._lock:
            found = self._operations.get(request.name)
        if found is None:
            raise ApiError(grpc.StatusCode.NOT_FOUND, f"Operation {request.name} not found")
        return found


def _unary(
    call: Callable[[Any], Any], request_type: Any, response_serializer: Callable[[Any], bytes]
) -> grpc.RpcMethodHandler:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return call(request)
        except ApiError as exc:
            context.abort(exc.code, exc.message)
        except Exception:
            logger.exception("%s failed", getattr(call, "__name__", call))
            context.abort(grpc.StatusCode.INTERNAL, "the Cloud Tasks emulator failed; see its log")

    return grpc.unary_unary_rpc_method_handler(
        handle, request_deserializer=request_type.deserialize,
        response_serializer=response_serializer,
    )


def handlers(store: TaskStore) -> list[grpc.GenericRpcHandler]:
    """The generic handlers of the Cloud Tasks service and of GetOperation, on ``store``."""
    api = _Api(store)
    s, v = store, tasks_v2
    queue_out = v.Queue.serialize
    task_out = v.Task.serialize
    empty_out = _empty_pb2.Empty.SerializeToString
    operation_out = _operations_pb2.Operation.SerializeToString
    methods = {
        "CreateQueue": _unary(lambda r: s.create_queue(r.parent, r.queue),
                              v.CreateQueueRequest, queue_out),
        "GetQueue": _unary(lambda r: s.get_queue(r.name), v.GetQueueRequest, queue_out),
        "ListQueues": _unary(api.list_queues, v.ListQueuesRequest,
                             v.ListQueuesResponse.serialize),
        "UpdateQueue": _unary(api.update_queue, v.UpdateQueueRequest, queue_out),
        "DeleteQueue": _unary(api.delete_queue, v.DeleteQueueRequest, empty_out),
        "PauseQueue": _unary(lambda r: s.set_state(r.name, v.Queue.State.PAUSED),
                             v.PauseQueueRequest, queue_out),
        "ResumeQueue": _unary(lambda r: s.set_state(r.name, v.Queue.State.RUNNING),
                              v.ResumeQueueRequest, queue_out),
        "PurgeQueue": _unary(lambda r: s.purge_queue(r.name), v.PurgeQueueRequest, queue_out),
        "CreateTask": _unary(lambda r: s.create_task(r.parent, r.task, r.response_view),
                             v.CreateTaskRequest, task_out),
        "BatchCreateTasks": _unary(api.batch_create, v.BatchCreateTasksRequest, operation_out),
        "GetTask": _unary(lambda r: s.get_task(r.name, r.response_view), v.GetTaskRequest,
                          task_out),
        "ListTasks": _unary(api.list_tasks, v.ListTasksRequest, v.ListTasksResponse.serialize),
        "DeleteTask": _unary(api.delete_task, v.DeleteTaskRequest, empty_out),
        "BatchDeleteTasks": _unary(api.batch_delete, v.BatchDeleteTasksRequest, operation_out),
        "RunTask": _unary(lambda r: s.run_task(r.name, r.response_view), v.RunTaskRequest,
                          task_out),
    }
    get_operation = grpc.unary_unary_rpc_method_handler(
        _operation_handler(api), response_serializer=operation_out,
        request_deserializer=_operations_pb2.GetOperationRequest.FromString,
    )
    return [
        grpc.method_handlers_generic_handler(SERVICE, methods),
        grpc.method_handlers_generic_handler("google.longrunning.Operations",
                                             {"GetOperation": get_operation}),
    ]


def _operation_handler(api: _Api) -> Callable[[Any, grpc.ServicerContext], Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return api.get_operation(request)
        except ApiError as exc:
            context.abort(exc.code, exc.message)

    return handle
