"""How an application enqueues: the default adapter and ways to swap it.

The default is a :class:`~pubsub_jobs.adapters.pubsub.PubSubAdapter` built from the settings
on first use. Tests swap in :class:`~pubsub_jobs.adapters.memory.InMemoryAdapter` or
:class:`~pubsub_jobs.adapters.immediate.ImmediateAdapter` with :func:`use_adapter`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pubsub_jobs._default_adapter import set_default_adapter_provider
from pubsub_jobs.adapter import Adapter
from pubsub_jobs.message import EnqueuedJob
from pubsub_jobs.settings import on_configure

__all__ = ["Adapter", "EnqueuedJob", "cancel", "get_adapter", "set_adapter", "use_adapter"]

_lock = threading.Lock()
_default: Adapter | None = None
_explicit = False


def get_adapter() -> Adapter:
    """The adapter ``Job.enqueue`` uses, built from the settings on first use."""
    global _default
    adapter = _default
    if adapter is not None:
        return adapter
    with _lock:
        if _default is None:
            from pubsub_jobs.adapters.pubsub import PubSubAdapter  # heavy: on first use

            _default = PubSubAdapter()
        return _default


def set_adapter(adapter: Adapter | None) -> None:
    """Make ``adapter`` the default (``None``: back to Pub/Sub from the settings)."""
    global _default, _explicit
    with _lock:
        _default, _explicit = adapter, adapter is not None


@contextmanager
def use_adapter(adapter: Adapter) -> Iterator[Adapter]:
    """Use ``adapter`` as the default inside a ``with`` block (tests)."""
    global _default, _explicit
    with _lock:
        previous = (_default, _explicit)
        _default, _explicit = adapter, True
    try:
        yield adapter
    finally:
        with _lock:
            _default, _explicit = previous


def cancel(job_id: str, *, queue: str = "default", adapter: Adapter | None = None) -> bool:
    """Cancel job ``job_id`` of ``queue`` while it still waits in Cloud Tasks (delayed, unique
    or rate-limited), from any process: True when it was cancelled and will not run, False
    when it had already left (published to Pub/Sub: it will run, or ran) or no such job
    waits, the reason logged at INFO.

    ``adapter`` defaults to the default adapter (:func:`get_adapter`). An adapter that holds
    no waiting jobs raises :class:`~pubsub_jobs.errors.ConfigurationError`; a call Cloud Tasks
    refuses raises :class:`~pubsub_jobs.errors.CancelError`, each with a sentence.
    """
    return (adapter or get_adapter()).cancel(job_id, queue)


def _reset_default_adapter() -> None:
    """Drop the settings-built default so new settings take effect (``configure``)."""
    global _default
    with _lock:
        if not _explicit and _default is not None:
            _default.close()
            _default = None


set_default_adapter_provider(get_adapter)  # the package's own provider led here; now direct
on_configure(_reset_default_adapter)
