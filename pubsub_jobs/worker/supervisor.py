"""``pubsub-jobs worker --processes N``: N worker processes under one supervisor.

The supervisor starts the children (each a plain worker in its own session, so a terminal's
Ctrl-C reaches them once, through the supervisor), restarts one that dies with a backoff,
forwards the first SIGTERM/SIGINT to all of them and waits for their graceful stop; a second
signal kills them. Each child writes its status to a file every second; the supervisor's
HTTP port serves their aggregate. A child whose supervisor disappears stops by itself.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.worker.options import WorkerOptions
from pubsub_jobs.worker.status import aggregate

log = logging.getLogger(__name__)

SUPERVISOR_ENV = "PUBSUB_JOBS_SUPERVISOR_PID"
#: A child's options, as the JSON of :class:`WorkerOptions` (never a command line to parse).
OPTIONS_ENV = "PUBSUB_JOBS_WORKER_OPTIONS"
#: A child whose status file is older than this is reported as not answering.
STALE_AFTER = 15.0


@dataclass
class _Child:
    index: int
    status_file: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default_factory=time.monotonic)


class Supervisor:
    """Runs ``options.processes`` worker processes with ``options`` and keeps them running."""

    def __init__(self, options: WorkerOptions, *, status_dir: Path | None = None) -> None:
        processes = options.processes or 1
        if processes < 1:
            raise ConfigurationError("--processes is at least 1")
        self.options = options
        self.shutdown_timeout = options.shutdown_timeout
        self._dir = Path(status_dir or tempfile.mkdtemp(prefix="pubsub-jobs-"))
        self.children = [_Child(i, self._dir / f"child-{i}.json") for i in range(processes)]
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def request_stop(self) -> None:
        self._stop.set()

    def kill(self) -> None:
        """Second signal: kill every child now."""
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.kill()

    def run(self) -> int:
        """Start the children, restart those that die, stop them all on request."""
        for child in self.children:
            self._start(child)
        while not self._stop.wait(0.2):
            for child in self.children:
                self._watch(child)
        return self._stop_children()

    def _start(self, child: _Child) -> None:
        argv = [sys.executable, "-m", "pubsub_jobs.worker._child"]
        options = self.options.model_copy(
            update={"processes": None, "http_port": None, "status_file": child.status_file}
        )
        env = dict(os.environ, **{SUPERVISOR_ENV: str(os.getpid()),
                                  OPTIONS_ENV: options.model_dump_json()})
        child.proc = subprocess.Popen(argv, env=env, start_new_session=True)  # noqa: S603
        child.started_at = time.monotonic()
        log.info("started worker process %d (pid %d)", child.index, child.proc.pid)

    def _watch(self, child: _Child) -> None:
        proc = child.proc
        if proc is not None and proc.poll() is None:
            return
        now = time.monotonic()
        if proc is not None:
            code = proc.returncode
            child.proc = None
            ran_for = now - child.started_at
            if ran_for > 60:
                child.restarts = 0
            delay = min(30.0, 0.5 * 2**child.restarts)
            child.restarts += 1
            child.next_start = now + delay
            log.error("worker process %d (pid %d) exited with %s; restarting in %.1fs",
                      child.index, proc.pid, code, delay)
        if now >= child.next_start:
            self._start(child)

    def _stop_children(self) -> int:
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout + 5
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait()
        codes = [proc.returncode for proc in running]
        log.info("all worker processes stopped (%s)", codes)
        # A child still starting has no signal handler yet and dies of the SIGTERM itself;
        # it held no messages, so that is a clean stop too.
        return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1

    def status(self) -> dict[str, Any]:
        """The children's statuses combined; a child not reporting makes it stuck."""
        statuses = []
        now = time.time()
        for child in self.children:
            try:
                data = json.loads(child.status_file.read_text())
            except (OSError, ValueError):
                data = None
            pid = child.proc.pid if child.proc is not None else None
            if data is None or data.get("pid") != pid:
                starting = (child.proc is not None
                            and time.monotonic() - child.started_at < STALE_AFTER)
                statuses.append({
                    "pid": pid,
                    "status": "ok" if starting else "stuck",
                    "reasons": [] if starting else [f"worker process {child.index} not running"],
                    "queues": [],
                })
                continue
            if now - float(data.get("written_at", 0)) > STALE_AFTER:
                data["status"] = "stuck"
                data["reasons"] = [*data.get("reasons", []), "status not updated for "
                                   f"{now - float(data.get('written_at', 0)):.0f}s"]
            statuses.append(data)
        result = aggregate(statuses)
        result["supervisor_pid"] = os.getpid()
        result["restarts"] = sum(c.restarts for c in self.children)
        return result


def child_options(text: str) -> WorkerOptions:
    """The options a supervisor gave its child (see :data:`OPTIONS_ENV`)."""
    return WorkerOptions.model_validate_json(text)


def watch_supervisor(on_gone: Any) -> None:
    """In a child: call ``on_gone()`` once the supervisor that started us has disappeared."""
    expected = os.environ.get(SUPERVISOR_ENV)
    if not expected:
        return

    def loop() -> None:
        while os.getppid() == int(expected):
            time.sleep(1.0)
        log.error("the supervisor (pid %s) is gone; stopping", expected)
        on_gone()

    threading.Thread(target=loop, name="pubsub-jobs-supervisor-watch", daemon=True).start()
