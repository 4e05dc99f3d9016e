"""Imported by a worker in tests/emulator/test_hardening.py: makes its stop hang, as a stuck library
call would, to show the watchdog ends the process anyway."""

from __future__ import annotations

import time

from pubsub_jobs.worker.runner import Worker


def _hang(self: Worker, timeout: float | None = None) -> bool:
    time.sleep(3600)
    return True


Worker.stop = _hang  # type: ignore[method-assign]
