"""Stopping a detached emulator never kills a process that is not the emulator it started."""

from __future__ import annotations

import subprocess
import sys
import time

from pubsub_jobs.emulator import (
    free_port,
    stop_detached_pubsub_emulator,
)
from pubsub_jobs.emulator.pubsub import pid_file


def test_stop_detached_never_kills_a_stranger() -> None:
    port = free_port()
    path = pid_file(port)
    path.parent.mkdir(parents=True, exist_ok=True)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        path.write_text(f"{stranger.pid}\n")
        assert not stop_detached_pubsub_emulator(port)
        time.sleep(0.2)
        assert stranger.poll() is None
        assert not path.exists()  # stale pid file removed
    finally:
        stranger.kill()
        stranger.wait()
        path.unlink(missing_ok=True)


