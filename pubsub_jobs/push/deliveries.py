"""What one push endpoint knows of deliveries: the messages it is running or is done with.

Pub/Sub delivers at least once: a message may come again after its answer was lost or its
ack deadline passed. One done here (answered 204) is answered 204 again without running;
one running here is answered 503 and left to that run. Only this process's messages are
known (the most recent :data:`REMEMBERED_MESSAGES`): another instance may run a
redelivered message again, so jobs should still be idempotent.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

#: Messages remembered as done, and as counted; the oldest are forgotten beyond it.
REMEMBERED_MESSAGES = 10_000


class Deliveries:
    """The messages this process is running, those it is done with (the most recent
    ``limit``), and deliveries counted for envelopes without ``deliveryAttempt``."""

    def __init__(self, limit: int = REMEMBERED_MESSAGES) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._running: set[tuple[str, str]] = set()
        self._done: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._counts: OrderedDict[tuple[str, str], int] = OrderedDict()

    def begin(self, key: tuple[str, str]) -> str | None:
        """``"done"`` or ``"running"`` for a message seen already, else None: it is running
        from now on, and counted."""
        with self._lock:
            if key in self._done:
                return "done"
            if key in self._running:
                return "running"
            self._running.add(key)
            self._counts[key] = self._counts.pop(key, 0) + 1
            _trim(self._counts, self._limit)
            return None

    def count(self, key: tuple[str, str]) -> int:
        with self._lock:
            return self._counts.get(key, 1)

    def end(self, key: tuple[str, str], *, done: bool) -> None:
        with self._lock:
            self._running.discard(key)
            if done:
                self._counts.pop(key, None)
                self._done[key] = None
                _trim(self._done, self._limit)


def _trim(entries: OrderedDict[Any, Any], limit: int) -> None:
    while len(entries) > limit:
        entries.popitem(last=False)
