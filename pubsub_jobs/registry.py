"""Which jobs exist: the worker runs only jobs registered here, looked up by name.

A message names a job; it never names a module to import. Modules register their jobs when
they are imported (``@job`` does it), and the worker imports only the modules it was told to.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pubsub_jobs.errors import JobDefinitionError, UnknownJob

if TYPE_CHECKING:
    from pubsub_jobs.job import Job


class Registry:
    """Jobs by name. One default registry serves ``@job``; tests may build their own."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job[Any, Any]] = {}
        self._lock = threading.Lock()
        #: The job registered under a name, or None: the worker's lookup, the dict's own
        #: ``get`` (no Python call on the hot path; :meth:`get` raises instead).
        self.find: Callable[[str], Job[Any, Any] | None] = self._jobs.get

    def register(self, job: Job[Any, Any]) -> None:
        """Add a job; a second, different function under a taken name is refused."""
        with self._lock:
            existing = self._jobs.get(job.name)
            if existing is not None and not _same_definition(existing, job):
                raise JobDefinitionError(
                    f"job name {job.name!r} is already registered for "
                    f"{existing.fn.__module__}.{existing.fn.__qualname__}; "
                    "give one of them @job(name=...)"
                )
            self._jobs[job.name] = job

    def unregister(self, name: str) -> None:
        with self._lock:
            self._jobs.pop(name, None)

    def get(self, name: str) -> Job[Any, Any]:
        try:
            return self._jobs[name]
        except KeyError:
            raise UnknownJob(f"no job is registered under the name {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __iter__(self) -> Iterator[Job[Any, Any]]:
        return iter(list(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)

    def queues(self) -> set[str]:
        """The queues the registered jobs go to by default."""
        return {job.queue for job in self}


def _same_definition(a: Job[Any, Any], b: Job[Any, Any]) -> bool:
    """A module imported twice (or reloaded) defines "the same" job again; that is allowed."""
    return (a.fn.__module__, a.fn.__qualname__) == (b.fn.__module__, b.fn.__qualname__)


default_registry = Registry()
