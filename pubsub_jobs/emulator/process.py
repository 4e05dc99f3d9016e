"""Emulator processes: spawning one with its output in a log file, waiting until it is ready,
stopping it, and stopping a detached one later by its pid file.

An emulator started in the foreground runs in a process group of its own, which
:meth:`EmulatorProcess.stop` signals. A detached one runs in a session of its own, outliving
the process that started it; its pid, address and log are recorded in a pid file, and
:func:`stop_by_pid_file` stops it only after checking in ``/proc`` (or ``ps``) that the pid
still runs that emulator, never a process that reused the pid. Nothing here installs a signal
handler.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess  # noqa: S404 - we run argument lists, no shell
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pubsub_jobs.emulator.cache import cache_root
from pubsub_jobs.errors import EmulatorError

__all__ = [
    "EmulatorCommand",
    "EmulatorProcess",
    "LOG_TAIL_LINES",
    "log_file",
    "log_tail",
    "proc_cmdline",
    "spawn",
    "stop_by_pid_file",
    "wait_until_ready",
]

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 30
"""Lines of an emulator's log that an error quotes."""


@dataclass(frozen=True)
class EmulatorCommand:
    """How to run an emulator: ``argv``, extra ``env`` on top of ``os.environ``, whether
    pubsub-jobs' fixes are on the class path (``patched``) and which (``fixes``: the names of
    the replaced classes)."""

    argv: list[str]
    env: dict[str, str]
    patched: bool
    description: str
    fixes: tuple[str, ...] = ()


class EmulatorProcess:
    """A running emulator that this process started. ``stop()`` signals only its own process
    group, and only while the child has not been reaped, so it never hits a reused pid."""

    label = "Pub/Sub emulator"

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        host: str,
        log_path: Path,
        command: EmulatorCommand,
        pid_file: Path | None = None,
    ) -> None:
        self.host = host
        self.pid = popen.pid
        self.log_path = log_path
        self.patched = command.patched
        self.command = command
        self.pid_file = pid_file
        self._popen = popen
        self._lock = threading.Lock()
        self._stopped = False

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running"
        return f"<EmulatorProcess {self.host} pid={self.pid} patched={self.patched} {state}>"

    def env(self) -> dict[str, str]:
        """The environment a client needs to reach this emulator."""
        return {"PUBSUB_EMULATOR_HOST": self.host}

    def is_running(self) -> bool:
        """Whether the emulator process is still alive."""
        return self._popen.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the process to exit; its exit code, or None if still running."""
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM our process group, wait up to ``timeout``, then SIGKILL. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            popen = self._popen
            if popen.poll() is None:  # not reaped yet: the pid (= our group) is still ours
                _signal_group(popen.pid, signal.SIGTERM)
                try:
                    popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.warning("%s pid %d ignored SIGTERM; killing it", self.label, popen.pid)
                    _signal_group(popen.pid, signal.SIGKILL)
                    popen.wait(10)
            self._stopped = True
            if self.pid_file is not None:
                _remove_pid_file(self.pid_file, popen.pid)

    def kill(self) -> None:
        """SIGKILL our process group at once, without waiting or locking: for a caller that
        must leave now (a second Ctrl-C). :meth:`stop` still reaps it afterwards."""
        if self._popen.returncode is None:  # not reaped: the pid (= our group) is still ours
            _signal_group(self._popen.pid, signal.SIGKILL)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def log_file(log_path: Path | None, default_name: str) -> Path:
    """``log_path``, else ``~/.cache/pubsub-jobs/<default_name>``; its folder is created."""
    path = cache_root() / default_name if log_path is None else log_path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmulatorError(f"Cannot create the folder of the emulator log {path}: {exc}") from exc
    return path


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` of the log ``path``, indented, for an error message."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in tail) or "    (empty)"


def spawn(
    command: EmulatorCommand,
    log_path: Path,
    *,
    env: Mapping[str, str],
    hostport: str,
    pid_file: Path | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` with its output in ``log_path``, after a header naming it.

    It runs in a process group of its own, which :meth:`EmulatorProcess.stop` signals. With
    a ``pid_file`` it runs detached instead (a session of its own, outliving us), and its
    pid, ``hostport`` and log are recorded there for :func:`stop_by_pid_file`.
    """
    detach = pid_file is not None
    try:
        with open(log_path, "wb") as log:
            header = (
                f"# pubsub-jobs: {command.description}\n"
                f"# pubsub-jobs: {shlex.join(command.argv)}\n"
            )
            log.write(header.encode())
            log.flush()
            popen = subprocess.Popen(  # noqa: S603 - argument list built by the caller, no shell
                command.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=detach,
                process_group=None if detach else 0,
            )
    except OSError as exc:
        raise EmulatorError(f"Cannot start {shlex.join(command.argv)}: {exc}") from exc
    if pid_file is not None:
        try:
            _write_atomically(pid_file, f"{popen.pid}\n{hostport}\n{log_path}\n")
        except OSError as exc:  # unrecorded, nothing could stop it later: stop it now
            _signal_group(popen.pid, signal.SIGKILL)
            popen.wait()
            raise EmulatorError(f"Cannot write the pid file {pid_file}: {exc}") from exc
    return popen


def wait_until_ready(
    process: EmulatorProcess,
    ready: Callable[[str, float], bool],
    timeout: float,
    *,
    probe: str,
    detail: str = "",
) -> None:
    """Poll ``ready(host, seconds)`` until it holds. If the process exits first, or
    ``timeout`` passes, or anything interrupts the wait, stop the process; the
    :class:`EmulatorError` raised quotes the end of its log. ``probe`` names the request it
    must answer, ``detail`` adds to the early-exit message."""
    label = process.label
    log_path = process.log_path
    deadline = time.monotonic() + timeout
    try:
        while True:
            code = process._popen.poll()
            if code is not None:
                raise EmulatorError(
                    f"The {label} exited early with code {code}{detail}. Last lines of "
                    f"{log_path}:\n{log_tail(log_path)}"
                )
            remaining = deadline - time.monotonic()
            if ready(process.host, max(0.1, min(1.0, remaining))):
                break
            if time.monotonic() >= deadline:
                raise EmulatorError(
                    f"The {label} did not answer {probe} within {timeout:g} s; stopped it. "
                    f"Last lines of {log_path}:\n{log_tail(log_path)}"
                )
            time.sleep(0.1)
    except BaseException:
        process.stop()
        raise


def proc_cmdline(pid: int) -> list[str] | None:
    """The argv of ``pid``, or None if it is gone or a zombie."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            stat = (proc / "stat").read_text()
            if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
                return None
            raw = (proc / "cmdline").read_bytes()
        except OSError:
            return None
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    if Path("/proc/self").exists():
        return None
    ps = shutil.which("ps")  # no /proc (macOS): ask ps
    if ps is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list
            [ps, "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True,
            check=False,
        )
    except OSError:
        return None
    if done.returncode != 0 or not done.stdout.strip() or done.stdout.split()[0].startswith("Z"):
        return None
    return shlex.split(done.stdout.strip())[1:]


def stop_by_pid_file(
    pid_file: Path, is_ours: Callable[[list[str]], bool], timeout: float
) -> bool:
    """Stop the detached emulator ``pid_file`` names if ``is_ours(its argv)`` still holds
    (never a process that reused the pid): SIGTERM, then SIGKILL after ``timeout`` s. True if
    one was stopped; False if none was running (a stale pid file is removed)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    cmdline = proc_cmdline(pid)
    if cmdline is None or not is_ours(cmdline):
        _remove_pid_file(pid_file, pid)
        return False
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        _remove_pid_file(pid_file, pid)
        return False
    sender = os.killpg if group == pid else os.kill  # ours lead their own session and group
    try:
        with contextlib.suppress(ProcessLookupError):
            sender(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc_cmdline(pid) is not None:
            if time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    sender(pid, signal.SIGKILL)
                kill_deadline = time.monotonic() + 5
                while proc_cmdline(pid) is not None and time.monotonic() < kill_deadline:
                    time.sleep(0.05)
                break
            time.sleep(0.05)
    except PermissionError as exc:
        raise EmulatorError(f"Cannot stop the emulator pid {pid} ({pid_file}): {exc}") from exc
    _remove_pid_file(pid_file, pid)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _remove_pid_file(path: Path, pid: int) -> None:
    """Remove ``path`` if it still names ``pid`` (a newer emulator may have replaced it)."""
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().split()[0]) == pid:
            path.unlink()


def _write_atomically(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file and a rename, so no reader sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)
