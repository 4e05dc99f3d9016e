"""Start and stop Google's Pub/Sub emulator for development and tests.

Pub/Sub emulator 0.8.20 (Cloud SDK 528) loses messages whenever a client cancels a
streaming-pull stream: its grpc-core calls ``io.grpc.InternalStatus.asRuntimeException(
Status, Metadata, boolean)``, which its bundled grpc-api lacks, and the NoSuchMethodError
leaves the dead stream registered, so messages handed to it never come back. When the jar
lacks that method we compile a replacement ``io.grpc.InternalStatus`` (shipped in
``_emulator_fix/``) against the jar and put it before the jar on the class path.

Run ``python -m pubsub_jobs._emulator start|stop [--port N]`` for a command line.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import ipaddress
import logging
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess  # noqa: S404 - we run java/javac/gcloud with argument lists, no shell
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = [
    "EmulatorAlreadyRunning",
    "EmulatorCommand",
    "EmulatorError",
    "EmulatorInstallation",
    "EmulatorProcess",
    "find_pubsub_emulator",
    "free_port",
    "pubsub_emulator_ready",
    "start_pubsub_emulator",
    "stop_detached",
]

logger = logging.getLogger(__name__)

JAR_ENV = "PUBSUB_JOBS_EMULATOR_JAR"
"""Environment variable that may point at the emulator's ``cloud-pubsub-emulator-*-all.jar``."""

UNPATCHED_ENV = "PUBSUB_JOBS_EMULATOR_UNPATCHED"
"""Set to ``1`` to run a buggy emulator without the fix (when no ``javac`` is available)."""

JVM_OPTS_ENV = "CLOUD_PUBSUB_EMULATOR_OPTS"
DEFAULT_JVM_OPTS = ("-Xmx256m",)
DEFAULT_MAIN_CLASS = "com.google.cloud.pubsub.testing.v1.Main"

INSTALL_HINT = (
    "Install Google's Pub/Sub emulator with `gcloud components install pubsub-emulator beta` "
    "(or, for a Cloud SDK installed from Google's apt repository, "
    "`apt-get install google-cloud-cli-pubsub-emulator`), and Java 11 or newer "
    "(e.g. `apt-get install openjdk-17-jdk-headless`; the JDK's javac compiles pubsub-jobs' "
    f"fix for emulator 0.8.20). Or set {JAR_ENV} to the emulator's "
    "cloud-pubsub-emulator-*-all.jar."
)

_FIX_SOURCE = Path(__file__).parent / "_emulator_fix" / "io" / "grpc" / "InternalStatus.java"
_FIX_CLASS = Path("io") / "grpc" / "InternalStatus.class"
_MISSING_METHOD = (
    b"asRuntimeException",
    b"(Lio/grpc/Status;Lio/grpc/Metadata;Z)Lio/grpc/StatusRuntimeException;",
)
_LOG_TAIL_LINES = 30


class EmulatorError(RuntimeError):
    """The emulator cannot be found, started or stopped; the message says what to do."""


class EmulatorAlreadyRunning(EmulatorError):
    """A ready Pub/Sub emulator already answers on the requested host and port."""

    def __init__(self, message: str, host: str) -> None:
        super().__init__(message)
        self.host = host


@dataclass(frozen=True)
class EmulatorCommand:
    """How to run the emulator: ``argv``, extra ``env`` on top of ``os.environ``, and whether
    pubsub-jobs' fix is on the class path (``patched``)."""

    argv: list[str]
    env: dict[str, str]
    patched: bool
    description: str


@dataclass(frozen=True)
class EmulatorInstallation:
    """An installed Pub/Sub emulator found by :func:`find_pubsub_emulator`.

    ``jar`` is run directly with ``java`` (so the fix can go before it on the class path);
    ``launcher`` (Google's start script) is used only when no jar is known.
    """

    jar: Path | None
    launcher: Path | None
    java: str | None
    version: str | None = None
    main_class: str = DEFAULT_MAIN_CLASS
    found_via: str = ""

    def needs_fix(self) -> bool:
        """True when the jar's ``io.grpc.InternalStatus`` lacks the overload grpc-core calls."""
        return self.jar is not None and not _jar_has_fixed_internal_status(self.jar)

    def command(
        self, port: int = 8085, host: str = "127.0.0.1", *, apply_fix: bool = True
    ) -> EmulatorCommand:
        """Build the command line for ``host:port``, compiling the fix first when needed."""
        hostport = [f"--host={host}", f"--port={port}"]
        label = f"Pub/Sub emulator {self.version or '(unknown version)'}"
        if self.jar is None:
            if self.launcher is None:  # pragma: no cover - find_pubsub_emulator prevents it
                raise EmulatorError(f"No Pub/Sub emulator found. {INSTALL_HINT}")
            return EmulatorCommand(
                argv=[str(self.launcher), *hostport],
                env={JVM_OPTS_ENV: " ".join(_jvm_opts())},
                patched=False,
                description=f"{label} via its launcher {self.launcher} (jar not found; unpatched)",
            )
        if self.java is None:  # pragma: no cover - find_pubsub_emulator prevents it
            raise EmulatorError(f"Java is needed to run the Pub/Sub emulator. {INSTALL_HINT}")
        classpath = [str(self.jar)]
        patched = False
        note = "its grpc needs no fix"
        if self.needs_fix():
            if not apply_fix:
                note = "UNPATCHED: loses messages of cancelled streaming pulls"
            elif os.environ.get(UNPATCHED_ENV, "") not in ("", "0"):
                note = (
                    f"UNPATCHED because {UNPATCHED_ENV} is set: loses messages of cancelled pulls"
                )
            else:
                fix_dir = _compiled_fix(self.jar, self.java)
                classpath.insert(0, str(fix_dir))
                patched = True
                note = (
                    "with pubsub-jobs' io.grpc.InternalStatus fix "
                    f"(the jar lacks asRuntimeException(Status, Metadata, boolean)) from {fix_dir}"
                )
        argv = [
            self.java,
            *_jvm_opts(),
            "-cp",
            os.pathsep.join(classpath),
            self.main_class,
            *hostport,
        ]
        return EmulatorCommand(
            argv=argv,
            env={},
            patched=patched,
            description=f"{label} ({self.jar}, java {self.java}), {note}",
        )


# --------------------------------------------------------------------------- finding


def find_pubsub_emulator() -> EmulatorInstallation:
    """Find the emulator jar (``$PUBSUB_JOBS_EMULATOR_JAR``, the Cloud SDK of ``gcloud`` on
    PATH, Google's launcher on PATH, ``gcloud info``) and Java, or raise :class:`EmulatorError`
    naming what to install."""
    java = _find_java()
    configured = os.environ.get(JAR_ENV)
    if configured:
        jar = Path(configured).expanduser()
        if not jar.is_file():
            raise EmulatorError(
                f"{JAR_ENV}={configured} is not a file. Point it at the emulator's "
                f"cloud-pubsub-emulator-*-all.jar or unset it. {INSTALL_HINT}"
            )
        return _installation(jar, None, java, f"${JAR_ENV}")

    launcher_on_path = shutil.which("cloud-pubsub-emulator")
    gcloud = shutil.which("gcloud")
    candidates: list[tuple[Path, str]] = []
    if gcloud:
        sdk_root = Path(gcloud).resolve().parent.parent
        candidates.append((sdk_root / "platform" / "pubsub-emulator", f"gcloud at {gcloud}"))
    if launcher_on_path:
        emulator_dir = Path(launcher_on_path).resolve().parent.parent
        candidates.append((emulator_dir, f"launcher at {launcher_on_path}"))
    for emulator_dir, via in candidates:
        found = _in_emulator_dir(emulator_dir, java, via)
        if found is not None:
            return found
    if gcloud:
        sdk_root_text = _gcloud_sdk_root(gcloud)
        if sdk_root_text:
            emulator_dir = Path(sdk_root_text) / "platform" / "pubsub-emulator"
            found = _in_emulator_dir(emulator_dir, java, "gcloud info")
            if found is not None:
                return found
    searched = ", ".join(str(d) for d, _ in candidates) or "no gcloud or launcher on PATH"
    raise EmulatorError(f"No Pub/Sub emulator found (searched: {searched}). {INSTALL_HINT}")


def _in_emulator_dir(emulator_dir: Path, java: str | None, via: str) -> EmulatorInstallation | None:
    """The installation in ``.../platform/pubsub-emulator`` (``lib/*-all.jar``, ``bin/``)."""
    jars = sorted(
        (emulator_dir / "lib").glob("cloud-pubsub-emulator-*.jar"),
        key=lambda p: (p.name.endswith("-all.jar"), _version_key(p.name)),
    )
    launcher = emulator_dir / "bin" / "cloud-pubsub-emulator"
    launcher_or_none = launcher if launcher.is_file() and os.access(launcher, os.X_OK) else None
    if jars:
        return _installation(jars[-1], launcher_or_none, java, via)
    if launcher_or_none is not None:
        if java is None:
            raise EmulatorError(f"Java is needed to run the Pub/Sub emulator. {INSTALL_HINT}")
        return EmulatorInstallation(jar=None, launcher=launcher_or_none, java=java, found_via=via)
    return None


def _installation(
    jar: Path, launcher: Path | None, java: str | None, via: str
) -> EmulatorInstallation:
    if java is None:
        raise EmulatorError(
            f"Found the Pub/Sub emulator ({jar}) but no Java: JAVA_HOME is not set and there "
            f"is no `java` on PATH. Java 11 or newer is needed. {INSTALL_HINT}"
        )
    version, main_class = _manifest(jar)
    return EmulatorInstallation(
        jar=jar.resolve(),
        launcher=launcher,
        java=java,
        version=version,
        main_class=main_class,
        found_via=via,
    )


def _version_key(name: str) -> tuple[int, ...]:
    digits = name.removeprefix("cloud-pubsub-emulator-").split("-")[0]
    return tuple(int(part) for part in digits.split(".") if part.isdigit())


def _manifest(jar: Path) -> tuple[str | None, str]:
    """(Implementation-Version, Main-Class) from the jar's manifest."""
    try:
        with zipfile.ZipFile(jar) as archive:
            text = archive.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise EmulatorError(
            f"{jar} is not a readable emulator jar ({exc}). {INSTALL_HINT}"
        ) from exc
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    return values.get("Implementation-Version"), values.get("Main-Class") or DEFAULT_MAIN_CLASS


def _find_java() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


def _find_javac(java: str) -> str | None:
    """``javac`` next to the ``java`` we run (same JDK), else the first on PATH."""
    sibling = Path(java).resolve().parent / "javac"
    if os.access(sibling, os.X_OK):
        return str(sibling)
    return shutil.which("javac")


def _gcloud_sdk_root(gcloud: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


# --------------------------------------------------------------------------- the fix


def _jar_has_fixed_internal_status(jar: Path) -> bool:
    """Whether ``io.grpc.InternalStatus`` in ``jar`` declares
    ``asRuntimeException(Status, Metadata, boolean)`` (what ``javap`` would list)."""
    try:
        with zipfile.ZipFile(jar) as archive:
            data = archive.read("io/grpc/InternalStatus.class")
    except KeyError:
        return True  # no grpc inside: nothing we know how to fix
    except (OSError, zipfile.BadZipFile) as exc:
        raise EmulatorError(f"Cannot read {jar}: {exc}") from exc
    try:
        return _MISSING_METHOD in _class_methods(data)
    except (struct.error, IndexError) as exc:
        raise EmulatorError(f"Cannot parse io/grpc/InternalStatus.class in {jar}: {exc}") from exc


def _class_methods(data: bytes) -> set[tuple[bytes, bytes]]:
    """(name, descriptor) of every method declared in a class file (JVMS §4)."""
    pos = 8  # magic, minor, major

    def u2() -> int:
        nonlocal pos
        (value,) = struct.unpack_from(">H", data, pos)
        pos += 2
        return int(value)

    def u4() -> int:
        nonlocal pos
        (value,) = struct.unpack_from(">I", data, pos)
        pos += 4
        return int(value)

    utf8: dict[int, bytes] = {}
    count = u2()
    index = 1
    while index < count:
        tag = data[pos]
        pos += 1
        if tag == 1:  # Utf8
            length = u2()
            utf8[index] = data[pos : pos + length]
            pos += length
        elif tag in (3, 4, 9, 10, 11, 12, 17, 18):
            pos += 4
        elif tag in (5, 6):  # Long, Double take two slots
            pos += 8
            index += 1
        elif tag in (7, 8, 16, 19, 20):
            pos += 2
        elif tag == 15:
            pos += 3
        else:
            raise EmulatorError(f"Unexpected constant pool tag {tag} in io/grpc/InternalStatus")
        index += 1
    pos += 6  # access_flags, this_class, super_class
    interfaces = u2()
    pos += 2 * interfaces

    def members() -> list[tuple[int, int]]:
        nonlocal pos
        result = []
        for _ in range(u2()):
            pos += 2  # access_flags
            name, descriptor = u2(), u2()
            for _ in range(u2()):  # attributes
                pos += 2
                length = u4()
                pos += length
            result.append((name, descriptor))
        return result

    members()  # fields
    return {(utf8.get(n, b""), utf8.get(d, b"")) for n, d in members()}


def _cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "pubsub-jobs"


def _compiled_fix(jar: Path, java: str) -> Path:
    """Compile the InternalStatus fix against ``jar`` once, into a cache directory keyed by
    the jar and the source; compiled in a temporary directory and renamed into place, so
    parallel processes never see a half-written result."""
    source = _FIX_SOURCE.read_bytes()
    key = hashlib.sha256(
        b"\0".join([str(jar.resolve()).encode(), str(jar.stat().st_size).encode(), source])
    ).hexdigest()[:16]
    parent = _cache_root() / "emulator-fix"
    final = parent / key
    if (final / _FIX_CLASS).is_file():
        return final
    javac = _find_javac(java)
    if javac is None:
        raise EmulatorError(
            f"Pub/Sub emulator jar {jar} lacks io.grpc.InternalStatus.asRuntimeException("
            "Status, Metadata, boolean), so it loses messages whenever a streaming pull is "
            "cancelled. pubsub-jobs fixes it with a small Java class, which needs `javac` (a "
            "JDK, e.g. `apt-get install openjdk-17-jdk-headless`) to compile. Or set "
            f"{UNPATCHED_ENV}=1 to run the emulator unfixed."
        )
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=parent))
    try:
        src = work / "src" / "io" / "grpc" / "InternalStatus.java"
        src.parent.mkdir(parents=True)
        src.write_bytes(source)
        out = work / "classes"
        out.mkdir()
        argv = [javac, "--release", "8", "-Xlint:-options", "-nowarn"]
        argv += ["-cp", str(jar), "-d", str(out), str(src)]
        done = subprocess.run(  # noqa: S603 - fixed argument list
            argv, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0 or not (out / _FIX_CLASS).is_file():
            raise EmulatorError(
                f"Compiling pubsub-jobs' emulator fix failed ({shlex.join(argv)}):\n"
                f"{done.stdout}{done.stderr}"
            )
        try:
            out.rename(final)
        except OSError as exc:  # another process won the race
            if not (final / _FIX_CLASS).is_file():
                raise EmulatorError(f"Cannot store the emulator fix in {final}: {exc}") from exc
        logger.info("Compiled pubsub-jobs' Pub/Sub emulator fix into %s", final)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _jvm_opts() -> list[str]:
    """JVM options: ``$JAVA_OPTS`` then ``$CLOUD_PUBSUB_EMULATOR_OPTS`` (default ``-Xmx256m``),
    as Google's launcher reads them."""
    opts = shlex.split(os.environ.get("JAVA_OPTS", ""))
    configured = os.environ.get(JVM_OPTS_ENV)
    opts += shlex.split(configured) if configured is not None else list(DEFAULT_JVM_OPTS)
    return opts


# --------------------------------------------------------------------------- readiness


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def pubsub_emulator_ready(host: str, timeout: float = 1.0) -> bool:
    """True when ``GET http://host/`` answers ``Ok``, as the Pub/Sub emulator does; an open
    TCP port alone (a stale or foreign process) is not enough."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(f"http://{host}/", timeout=timeout) as response:
            return bool(response.status == 200 and response.read(64).strip() == b"Ok")
    except (OSError, ValueError, urllib.error.URLError):
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (for tests; another process may take it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_taken(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        # As the JVM does: TIME_WAIT leftovers must not count, only a listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise EmulatorError(
            f"The emulator binds loopback addresses only (got host={host!r}); it has no "
            "authentication. Use 127.0.0.1, or the Docker compose file to expose it."
        )


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in tail) or "    (empty)"


# --------------------------------------------------------------------------- processes


def _pid_file(port: int) -> Path:
    return _cache_root() / f"emulator-{port}.pid"


class EmulatorProcess:
    """A running emulator that this process started. ``stop()`` signals only its own process
    group, and only while the child has not been reaped, so it never hits a reused pid."""

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
                    logger.warning("Pub/Sub emulator pid %d ignored SIGTERM; killing it", popen.pid)
                    _signal_group(popen.pid, signal.SIGKILL)
                    popen.wait(10)
            self._stopped = True
            if self.pid_file is not None:
                _remove_pid_file(self.pid_file, popen.pid)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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


def _log_file(log_path: Path | None, default_name: str) -> Path:
    """``log_path``, else ``~/.cache/pubsub-jobs/<default_name>``; its folder is created."""
    path = _cache_root() / default_name if log_path is None else log_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _spawn(
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
    pid, ``hostport`` and log are recorded there for :func:`_stop_detached`.
    """
    detach = pid_file is not None
    with open(log_path, "wb") as log_file:
        header = (
            f"# pubsub-jobs: {command.description}\n# pubsub-jobs: {shlex.join(command.argv)}\n"
        )
        log_file.write(header.encode())
        log_file.flush()
        popen = subprocess.Popen(  # noqa: S603 - argument list built by the caller, no shell
            command.argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=detach,
            process_group=None if detach else 0,
        )
    if pid_file is not None:
        _write_atomically(pid_file, f"{popen.pid}\n{hostport}\n{log_path}\n")
    return popen


def _wait_until_ready(
    process: EmulatorProcess,
    ready: Callable[[str, float], bool],
    timeout: float,
    *,
    label: str,
    probe: str,
    detail: str = "",
) -> None:
    """Poll ``ready(host, seconds)`` until it holds. If the process exits first, or
    ``timeout`` passes, or anything interrupts the wait, stop the process; the
    :class:`EmulatorError` raised quotes the end of its log. ``label`` names the emulator,
    ``probe`` the request it must answer, ``detail`` adds to the early-exit message."""
    log_path = process.log_path
    deadline = time.monotonic() + timeout
    try:
        while True:
            code = process._popen.poll()
            if code is not None:
                raise EmulatorError(
                    f"The {label} exited early with code {code}{detail}. Last lines of "
                    f"{log_path}:\n{_log_tail(log_path)}"
                )
            remaining = deadline - time.monotonic()
            if ready(process.host, max(0.1, min(1.0, remaining))):
                break
            if time.monotonic() >= deadline:
                raise EmulatorError(
                    f"The {label} did not answer {probe} within {timeout:g} s; stopped it. "
                    f"Last lines of {log_path}:\n{_log_tail(log_path)}"
                )
            time.sleep(0.1)
    except BaseException:
        process.stop()
        raise


def start_pubsub_emulator(
    port: int = 8085,
    *,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    data_dir: Path | None = None,
    timeout: float = 60.0,
    detach: bool = False,
    _apply_fix: bool = True,
) -> EmulatorProcess:
    """Start the Pub/Sub emulator on ``host:port`` (loopback only) and wait until ``GET /``
    answers ``Ok``.

    Output goes to ``log_path`` (default ``~/.cache/pubsub-jobs/emulator-PORT.log``). The
    emulator keeps its state in memory; ``data_dir``, if given, is its working directory and
    receives an ``env.yaml`` as gcloud writes it. ``detach=True`` starts it in a session of its
    own that outlives this process and records its pid for :func:`stop_detached`.
    ``_apply_fix=False`` runs a buggy jar unfixed (to reproduce the bug).
    """
    _check_loopback(host)
    hostport = _hostport(host, port)
    if _port_taken(host, port):
        if pubsub_emulator_ready(hostport):
            raise EmulatorAlreadyRunning(
                f"A Pub/Sub emulator is already running at {hostport} "
                f"(use it: export PUBSUB_EMULATOR_HOST={hostport}; if it was started with "
                f"`python -m pubsub_jobs._emulator start`, stop it with `... stop --port {port}`)."
                " It may lack pubsub-jobs' fix if something else started it.",
                hostport,
            )
        raise EmulatorError(
            f"Port {port} on {host} is already in use by another program (not a ready Pub/Sub "
            "emulator). Stop it or choose another port."
        )
    command = find_pubsub_emulator().command(port, host, apply_fix=_apply_fix)
    if command.patched:
        logger.info("Applying pubsub-jobs' fix to the Pub/Sub emulator: %s", command.description)
    elif "UNPATCHED" in command.description:
        logger.warning("%s", command.description)

    log_path = _log_file(log_path, f"emulator-{port}.log")
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "env.yaml").write_text(f"PUBSUB_EMULATOR_HOST: {hostport}\n")
    pid_file = _pid_file(port) if detach else None
    env = {**os.environ, **command.env}
    popen = _spawn(command, log_path, env=env, hostport=hostport, pid_file=pid_file, cwd=data_dir)
    process = EmulatorProcess(popen, hostport, log_path, command, pid_file)
    _wait_until_ready(
        process,
        pubsub_emulator_ready,
        timeout,
        label="Pub/Sub emulator",
        probe=f"`GET http://{hostport}/` with Ok",
        detail=f" ({command.description})",
    )
    logger.info("Pub/Sub emulator ready at %s (pid %d, log %s)", hostport, popen.pid, log_path)
    return process


def _proc_cmdline(pid: int) -> list[str] | None:
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
    done = subprocess.run(  # noqa: S603 - fixed argument list
        [ps, "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip() or done.stdout.split()[0].startswith("Z"):
        return None
    return shlex.split(done.stdout.strip())[1:]


def _is_our_emulator(cmdline: list[str], port: int) -> bool:
    if not cmdline or not Path(cmdline[0]).name.startswith("java"):
        return False
    return any("cloud-pubsub-emulator" in arg for arg in cmdline) and f"--port={port}" in cmdline


def stop_detached(port: int = 8085, timeout: float = 10.0) -> bool:
    """Stop the emulator that ``start_pubsub_emulator(port, detach=True)`` started, found by its
    pid file and checked to still be a java process running the emulator jar on that port.
    True if one was stopped; False if none was running (a stale pid file is removed)."""
    return _stop_detached(_pid_file(port), lambda cmdline: _is_our_emulator(cmdline, port), timeout)


def _stop_detached(pid_file: Path, is_ours: Callable[[list[str]], bool], timeout: float) -> bool:
    """Stop the detached emulator ``pid_file`` names if ``is_ours(its argv)`` still holds
    (never a process that reused the pid): SIGTERM, then SIGKILL after ``timeout`` s. True if
    one was stopped; False if none was running (a stale pid file is removed)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    cmdline = _proc_cmdline(pid)
    if cmdline is None or not is_ours(cmdline):
        _remove_pid_file(pid_file, pid)
        return False
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        _remove_pid_file(pid_file, pid)
        return False
    sender = os.killpg if group == pid else os.kill  # ours lead their own session and group
    with contextlib.suppress(ProcessLookupError):
        sender(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _proc_cmdline(pid) is not None:
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                sender(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 5
            while _proc_cmdline(pid) is not None and time.monotonic() < kill_deadline:
                time.sleep(0.05)
            break
        time.sleep(0.05)
    _remove_pid_file(pid_file, pid)
    return True


# --------------------------------------------------------------------------- command line


@dataclass
class _Args:
    command: str = "start"
    port: int = 8085
    host: str = "127.0.0.1"
    foreground: bool = False
    timeout: float = 60.0


def _parse(argv: list[str] | None) -> _Args:
    parser = argparse.ArgumentParser(
        prog="python -m pubsub_jobs._emulator",
        description="Start or stop Google's Pub/Sub emulator (with pubsub-jobs' fix).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start on 127.0.0.1, wait until ready, print exports")
    start.add_argument("--port", type=int, default=8085)
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--timeout", type=float, default=60.0)
    start.add_argument(
        "--foreground", action="store_true", help="run until Ctrl-C instead of detaching"
    )
    stop = sub.add_parser("stop", help="stop an emulator started by `start`")
    stop.add_argument("--port", type=int, default=8085)
    ns = parser.parse_args(argv)
    return _Args(
        command=ns.command,
        port=ns.port,
        host=getattr(ns, "host", "127.0.0.1"),
        foreground=getattr(ns, "foreground", False),
        timeout=getattr(ns, "timeout", 60.0),
    )


@contextlib.contextmanager
def _interrupts() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while running in the foreground."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """``start [--port N] [--foreground]`` / ``stop [--port N]``; exports go to stdout."""
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command == "stop":
        stopped = stop_detached(args.port)
        print(
            f"Stopped the Pub/Sub emulator on port {args.port}."
            if stopped
            else f"No Pub/Sub emulator started by pubsub-jobs runs on port {args.port}.",
            file=sys.stderr,
        )
        return 0
    try:
        process = start_pubsub_emulator(
            args.port, host=args.host, timeout=args.timeout, detach=not args.foreground
        )
    except EmulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{process.command.description}; pid {process.pid}, log {process.log_path}", file=sys.stderr
    )
    for name, value in process.env().items():
        print(f"export {name}={value}")
    sys.stdout.flush()
    if not args.foreground:
        print(
            f"Stop it with: python -m pubsub_jobs._emulator stop --port {args.port}",
            file=sys.stderr,
        )
        return 0
    with _interrupts():
        try:
            code = process.wait()
            print(
                f"The Pub/Sub emulator exited with code {code}; see {process.log_path}",
                file=sys.stderr,
            )
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            process.stop()


if __name__ == "__main__":
    sys.exit(main())
