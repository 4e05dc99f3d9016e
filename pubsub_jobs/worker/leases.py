"""Keeping running jobs' messages leased, so a job runs once even while it holds the GIL.

The lease design: every message this worker holds is leased for ``lease_seconds`` (60 by
default) at a time, by the client's leaser and, for the messages whose job is running, by
:class:`LeaseKeeper` every ``lease_seconds / 4`` seconds. The client's leaser waits a random
time up to 90% of the lease between renewals, so on its own a job that holds the GIL (a C
extension, a backtracking regex: no Python thread runs meanwhile) could outlive the lease and
be delivered again; with the keeper a running job's lease always has at least three quarters
of ``lease_seconds`` left (45 s), which is how long a job may hold the GIL. A worker that is
killed stops renewing: its messages come back within ``lease_seconds``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from google.cloud.pubsub_v1.subscriber.message import Message

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases of the messages whose jobs run now: ``running()`` lists them (the
    worker's own record of its running jobs, so a job costs the keeper nothing)."""

    def __init__(self, lease_seconds: int, running: Callable[[], list[Message]]) -> None:
        self.lease_seconds = lease_seconds
        self._messages = running
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LeaseKeeper:
        self._thread = threading.Thread(target=self._run, name="pubsub-jobs-leases",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        interval = self.lease_seconds / 4
        while not self._stop.wait(interval):
            for message in self._messages():
                try:
                    message.modify_ack_deadline(self.lease_seconds)
                except Exception as exc:  # the client is closing: nothing left to keep
                    log.debug("could not renew the lease of %s: %s", message.message_id, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
