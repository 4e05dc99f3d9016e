"""Resource names as Cloud Tasks accepts them, and the error it answers for the rest.

``projects/PROJECT_ID/locations/LOCATION_ID/queues/QUEUE_ID/tasks/TASK_ID``: a project id
of letters, digits, hyphens, colons and periods; a location of letters, digits and hyphens;
a queue id of letters, digits and hyphens (at most 100); a task id of letters, digits,
hyphens and underscores (at most 500). Anything else is ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import re

import grpc

__all__ = [
    "ApiError",
    "check_location",
    "check_queue_name",
    "check_task_name",
    "queue_of_task",
]

_PROJECT = r"[A-Za-z0-9][A-Za-z0-9.:-]{0,99}"
_LOCATION = r"[A-Za-z0-9-]{1,63}"
LOCATION_RE = re.compile(rf"projects/{_PROJECT}/locations/{_LOCATION}")
QUEUE_RE = re.compile(rf"{LOCATION_RE.pattern}/queues/[A-Za-z0-9-]{{1,100}}")
TASK_RE = re.compile(rf"{QUEUE_RE.pattern}/tasks/[A-Za-z0-9_-]{{1,500}}")


class ApiError(Exception):
    """An answer other than OK: the gRPC status ``code`` and its ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_location(name: str) -> str:
    """``name`` if it is ``projects/P/locations/L``, else ``INVALID_ARGUMENT``."""
    if not LOCATION_RE.fullmatch(name):
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"Invalid resource field value in the request: parent {name!r} must be "
                       "formatted as projects/PROJECT_ID/locations/LOCATION_ID")
    return name


def check_queue_name(name: str) -> str:
    """``name`` if it is a well-formed queue name, else ``INVALID_ARGUMENT``."""
    if not QUEUE_RE.fullmatch(name):
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"Queue name {name!r} must be formatted as projects/PROJECT_ID/locations/"
                       "LOCATION_ID/queues/QUEUE_ID (QUEUE_ID: letters, numbers and hyphens, "
                       "at most 100 characters)")
    return name


def check_task_name(name: str) -> str:
    """``name`` if it is a well-formed task name, else ``INVALID_ARGUMENT``."""
    if not TASK_RE.fullmatch(name):
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"Task name {name!r} must be formatted as projects/PROJECT_ID/locations/"
                       "LOCATION_ID/queues/QUEUE_ID/tasks/TASK_ID (TASK_ID: letters, numbers, "
                       "hyphens and underscores, at most 500 characters)")
    return name


def queue_of_task(name: str) -> str:
    """The queue name of a well-formed task name."""
    return name.rsplit("/tasks/", 1)[0]
