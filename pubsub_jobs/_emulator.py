"""Start and stop Google's Pub/Sub emulator for development and tests.

Pub/Sub emulator 0.8.20 (Cloud SDK 528) has two bugs that lose messages, which we fix in the
emulator by compiling a replacement class (shipped in ``_emulator_fix/``) against its jar and
putting it before the jar on the class path, each only when the jar needs it:

- It loses messages whenever a client cancels a streaming-pull stream: its grpc-core calls
  ``io.grpc.InternalStatus.asRuntimeException(Status, Metadata, boolean)``, which its bundled
  grpc-api lacks, and the NoSuchMethodError leaves the dead stream registered, so messages
  handed to it never come back. Fixed by ``io.grpc.InternalStatus`` with that method.
- On a subscription with a retry policy, it can stop redelivering for good: the periodic task
  that redelivers delayed (expired or nacked) messages nacks an ack id twice when messages
  expire together, meets a NullPointerException, and is cancelled. Fixed by
  ``MessageBacklog$ExpireOutstandingMessagesRunnable`` that skips ack ids no longer
  outstanding and never throws.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
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
"""Set to ``1`` to run a buggy emulator without the fixes (when no ``javac`` is available)."""

JVM_OPTS_ENV = "CLOUD_PUBSUB_EMULATOR_OPTS"
DEFAULT_JVM_OPTS = ("-Xmx256m",)
DEFAULT_MAIN_CLASS = "com.google.cloud.pubsub.testing.v1.Main"

INSTALL_HINT = (
    "Install Google's Pub/Sub emulator with `gcloud components install pubsub-emulator beta` "
    "(or, for a Cloud SDK installed from Google's apt repository, "
    "`apt-get install google-cloud-cli-pubsub-emulator`), and Java 11 or newer "
    "(e.g. `apt-get install openjdk-17-jdk-headless`; the JDK's javac compiles pubsub-jobs' "
    f"fixes for emulator 0.8.20). Or set {JAR_ENV} to the emulator's "
    "cloud-pubsub-emulator-*-all.jar."
)

_FIX_ROOT = Path(__file__).parent / "_emulator_fix"
_MISSING_METHOD = (
    b"asRuntimeException",
    b"(Lio/grpc/Status;Lio/grpc/Metadata;Z)Lio/grpc/StatusRuntimeException;",
)
_V1 = "com/google/cloud/pubsub/testing/v1"
_BACKLOG_CLASS = f"{_V1}/MessageBacklog.class"
_EXPIRE_RUNNABLE = f"{_V1}/MessageBacklog$ExpireOutstandingMessagesRunnable"
_CATCH_ALL = frozenset(
    {
        b"java/lang/Throwable",
        b"java/lang/Exception",
        b"java/lang/RuntimeException",
        b"java/lang/NullPointerException",
    }
)
# What the replacement runnable uses of MessageBacklog (through reflection) and the
# constructor MessageBacklog calls: a jar without them is a layout the fix was not written for.
_BACKLOG_FIELDS_USED = frozenset(
    {
        (b"delayedMessagesByTime", b"Ljava/util/SortedMap;"),
        (b"delivered", b"Ljava/util/Map;"),
        (b"clock", f"L{_V1}/Clock;".encode()),
    }
)
_BACKLOG_METHODS_USED = frozenset({(b"nackMessage", b"(Ljava/lang/String;)V")})
_RUNNABLE_CONSTRUCTOR = (b"<init>", f"(L{_V1}/MessageBacklog;)V".encode())
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
    """How to run the emulator: ``argv``, extra ``env`` on top of ``os.environ``, whether
    pubsub-jobs' fixes are on the class path (``patched``) and which (``fixes``: the names of
    the replaced classes)."""

    argv: list[str]
    env: dict[str, str]
    patched: bool
    description: str
    fixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class EmulatorInstallation:
    """An installed Pub/Sub emulator found by :func:`find_pubsub_emulator`.

    ``jar`` is run directly with ``java`` (so the fixes can go before it on the class path);
    ``launcher`` (Google's start script) is used only when no jar is known.
    """

    jar: Path | None
    launcher: Path | None
    java: str | None
    version: str | None = None
    main_class: str = DEFAULT_MAIN_CLASS
    found_via: str = ""

    def needs_fix(self) -> bool:
        """True when the jar has a bug pubsub-jobs fixes (see :meth:`fixes_needed`)."""
        return bool(self.fixes_needed())

    def fixes_needed(self) -> list[_Fix]:
        """The fixes this jar needs: ``io.grpc.InternalStatus`` when it lacks the overload
        grpc-core calls; ``MessageBacklog$ExpireOutstandingMessagesRunnable`` when that task
        lets a NullPointerException cancel it."""
        if self.jar is None:
            return []
        return [fix for fix in _FIXES if fix.needed(self.jar)]

    def command(
        self, port: int = 8085, host: str = "127.0.0.1", *, apply_fix: bool = True
    ) -> EmulatorCommand:
        """Build the command line for ``host:port``, compiling the fixes it needs first."""
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
        needed = self.fixes_needed()
        applied: list[str] = []
        note = "it needs none of pubsub-jobs' fixes"
        if needed:
            losses = "; ".join(fix.loss for fix in needed)
            if not apply_fix:
                note = f"UNPATCHED: {losses}"
            elif os.environ.get(UNPATCHED_ENV, "") not in ("", "0"):
                note = f"UNPATCHED because {UNPATCHED_ENV} is set: {losses}"
            else:
                notes = []
                for fix in needed:
                    fix_dir = _compiled_fix(self.jar, self.java, fix)
                    classpath.insert(len(applied), str(fix_dir))
                    applied.append(fix.class_name)
                    notes.append(f"pubsub-jobs' {fix.class_name} fix ({fix.reason}) from {fix_dir}")
                note = "with " + " and ".join(notes)
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
            patched=bool(applied),
            description=f"{label} ({self.jar}, java {self.java}), {note}",
            fixes=tuple(applied),
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


# --------------------------------------------------------------------------- the fixes


@dataclass(frozen=True)
class _Fix:
    """A class of the emulator that pubsub-jobs replaces: ``source`` (under ``_emulator_fix/``)
    compiles to ``class_file``, which goes before the jar on the class path when ``needed(jar)``.

    ``stubs`` (path -> Java source) are compiled first and put before the jar on javac's class
    path only, never the emulator's. ``reason`` and ``loss`` say why, in the log header and when
    the fix is not applied."""

    class_name: str
    source: Path
    class_file: Path
    needed: Callable[[Path], bool]
    reason: str
    loss: str
    stubs: tuple[tuple[str, str], ...] = ()


def _read_class(jar: Path, name: str) -> bytes | None:
    """The bytes of ``name`` (``a/b/C.class``) in ``jar``; None when the jar lacks it."""
    try:
        with zipfile.ZipFile(jar) as archive:
            return archive.read(name)
    except KeyError:
        return None
    except (OSError, zipfile.BadZipFile) as exc:
        raise EmulatorError(f"Cannot read {jar}: {exc}") from exc


def _jar_has_fixed_internal_status(jar: Path) -> bool:
    """Whether ``io.grpc.InternalStatus`` in ``jar`` declares
    ``asRuntimeException(Status, Metadata, boolean)`` (what ``javap`` would list)."""
    data = _read_class(jar, "io/grpc/InternalStatus.class")
    if data is None:
        return True  # no grpc inside: nothing we know how to fix
    return _MISSING_METHOD in _parse_class(data, "io/grpc/InternalStatus").methods


def _jar_needs_redelivery_fix(jar: Path) -> bool:
    """Whether ``MessageBacklog$ExpireOutstandingMessagesRunnable`` in ``jar`` can be cancelled
    by an unchecked exception (it refers to no catch-all exception class: 0.8.20 catches only
    ``StatusException``), and ``MessageBacklog`` has what the replacement uses. A jar with the
    flaw but another layout is run unfixed, with a warning."""
    runnable = _read_class(jar, f"{_EXPIRE_RUNNABLE}.class")
    backlog = _read_class(jar, _BACKLOG_CLASS)
    if runnable is None or backlog is None:
        return False  # not an emulator we know
    parsed = _parse_class(runnable, _EXPIRE_RUNNABLE)
    if parsed.classes & _CATCH_ALL:
        return False  # guarded: a later emulator, or already fixed
    backlog_parsed = _parse_class(backlog, _BACKLOG_CLASS)
    fits = (
        _RUNNABLE_CONSTRUCTOR in parsed.methods
        and _BACKLOG_FIELDS_USED <= backlog_parsed.fields
        and _BACKLOG_METHODS_USED <= backlog_parsed.methods
    )
    if not fits:
        logger.warning(
            "The Pub/Sub emulator jar %s may stop redelivering messages of subscriptions with a "
            "retry policy (its %s catches only some exceptions), but its MessageBacklog is not "
            "the one pubsub-jobs' fix was written for: running it unfixed.",
            jar,
            _EXPIRE_RUNNABLE.rpartition("/")[2],
        )
    return fits


@dataclass(frozen=True)
class _ClassFile:
    """What a class file names: classes it refers to, and its fields and methods as
    (name, descriptor)."""

    classes: frozenset[bytes]
    fields: frozenset[tuple[bytes, bytes]]
    methods: frozenset[tuple[bytes, bytes]]


def _class_methods(data: bytes) -> set[tuple[bytes, bytes]]:
    """(name, descriptor) of every method declared in a class file."""
    return set(_parse_class(data).methods)


def _parse_class(data: bytes, name: str = "class file") -> _ClassFile:
    """Parse a class file (JVMS §4) far enough for :class:`_ClassFile`; ``name`` is for errors."""
    try:
        return _parse_class_unchecked(data)
    except (struct.error, IndexError, ValueError) as exc:
        raise EmulatorError(f"Cannot parse {name}: {exc}") from exc


def _parse_class_unchecked(data: bytes) -> _ClassFile:
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
    class_names: list[int] = []
    count = u2()
    index = 1
    while index < count:
        tag = data[pos]
        pos += 1
        if tag == 1:  # Utf8
            length = u2()
            utf8[index] = data[pos : pos + length]
            pos += length
        elif tag == 7:  # Class: name_index
            class_names.append(u2())
        elif tag in (3, 4, 9, 10, 11, 12, 17, 18):
            pos += 4
        elif tag in (5, 6):  # Long, Double take two slots
            pos += 8
            index += 1
        elif tag in (8, 16, 19, 20):
            pos += 2
        elif tag == 15:
            pos += 3
        else:
            raise ValueError(f"unexpected constant pool tag {tag}")
        index += 1
    pos += 6  # access_flags, this_class, super_class
    interfaces = u2()
    pos += 2 * interfaces

    def members() -> frozenset[tuple[bytes, bytes]]:
        nonlocal pos
        result = []
        for _ in range(u2()):
            pos += 2  # access_flags
            name, descriptor = u2(), u2()
            for _ in range(u2()):  # attributes
                pos += 2
                length = u4()
                pos += length
            result.append((utf8.get(name, b""), utf8.get(descriptor, b"")))
        return frozenset(result)

    fields = members()
    methods = members()
    return _ClassFile(
        classes=frozenset(utf8.get(i, b"") for i in class_names), fields=fields, methods=methods
    )


_STREAM_CANCEL_FIX = _Fix(
    class_name="io.grpc.InternalStatus",
    source=Path("io") / "grpc" / "InternalStatus.java",
    class_file=Path("io") / "grpc" / "InternalStatus.class",
    needed=lambda jar: not _jar_has_fixed_internal_status(jar),
    reason="the jar lacks asRuntimeException(Status, Metadata, boolean)",
    loss="loses messages of cancelled streaming pulls",
)
_REDELIVERY_FIX = _Fix(
    class_name="MessageBacklog$ExpireOutstandingMessagesRunnable",
    source=Path(_V1) / "MessageBacklog$ExpireOutstandingMessagesRunnable.java",
    class_file=Path(f"{_EXPIRE_RUNNABLE}.class"),
    needed=_jar_needs_redelivery_fix,
    reason=(
        "the jar's task that redelivers delayed messages is cancelled for good by a "
        "NullPointerException, on subscriptions with a retry policy"
    ),
    loss="may stop redelivering messages of subscriptions with a retry policy",
    # javac 17 crashes compiling a top-level class that the real MessageBacklog.class declares
    # as its member; an empty MessageBacklog first on javac's class path avoids it.
    stubs=(
        (
            f"{_V1}/MessageBacklog.java",
            f"package {_V1.replace('/', '.')};\nclass MessageBacklog {{}}\n",
        ),
    ),
)
_FIXES = (_STREAM_CANCEL_FIX, _REDELIVERY_FIX)


def _cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "pubsub-jobs"


def _compiled_fix(jar: Path, java: str, fix: _Fix = _STREAM_CANCEL_FIX) -> Path:
    """Compile ``fix`` against ``jar`` once, into a cache directory keyed by the jar and the
    sources; compiled in a temporary directory and renamed into place, so parallel processes
    never see a half-written result. The directory holds the fix's class file and nothing
    else (never a stub)."""
    source = (_FIX_ROOT / fix.source).read_bytes()
    parts = [str(jar.resolve()).encode(), str(jar.stat().st_size).encode(), source]
    for stub_path, stub_source in fix.stubs:
        parts += [stub_path.encode(), stub_source.encode()]
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
    parent = _cache_root() / "emulator-fix"
    final = parent / key
    if (final / fix.class_file).is_file():
        return final
    javac = _find_javac(java)
    if javac is None:
        raise EmulatorError(
            f"Pub/Sub emulator jar {jar} needs pubsub-jobs' {fix.class_name} fix ({fix.reason}; "
            f"unfixed, it {fix.loss}). The fix is a small Java class, which needs `javac` (a "
            "JDK, e.g. `apt-get install openjdk-17-jdk-headless`) to compile. Or set "
            f"{UNPATCHED_ENV}=1 to run the emulator unfixed."
        )
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=parent))
    try:
        classpath = [str(jar)]
        if fix.stubs:
            stub_sources = []
            for stub_path, stub_source in fix.stubs:
                stub_file = work / "stub-src" / stub_path
                stub_file.parent.mkdir(parents=True, exist_ok=True)
                stub_file.write_text(stub_source)
                stub_sources.append(str(stub_file))
            _javac(javac, work, work / "stubs", [], stub_sources)
            classpath.insert(0, str(work / "stubs"))
        src = work / "src" / fix.source
        src.parent.mkdir(parents=True)
        src.write_bytes(source)
        out = work / "classes"
        _javac(javac, work, out, classpath, [str(src)])
        produced = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
        if produced != [fix.class_file]:
            raise EmulatorError(
                f"Compiling pubsub-jobs' emulator fix {fix.class_name} produced {produced}, "
                f"expected only {fix.class_file}"
            )
        try:
            out.rename(final)
        except OSError as exc:  # another process won the race
            if not (final / fix.class_file).is_file():
                raise EmulatorError(f"Cannot store the emulator fix in {final}: {exc}") from exc
        logger.info("Compiled pubsub-jobs' Pub/Sub emulator fix %s into %s", fix.class_name, final)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _javac(javac: str, work: Path, out: Path, classpath: list[str], sources: list[str]) -> None:
    """Compile ``sources`` for Java 8 into ``out``, in ``work`` (where a crashing javac leaves
    its ``javac.*.args``); only the named sources, never one found on the class path."""
    out.mkdir(parents=True)
    argv = [javac, "--release", "8", "-Xlint:-options", "-nowarn", "-implicit:none"]
    if classpath:
        argv += ["-cp", os.pathsep.join(classpath)]
    argv += ["-d", str(out), *sources]
    done = subprocess.run(  # noqa: S603 - fixed argument list
        argv, capture_output=True, text=True, timeout=120, check=False, cwd=work
    )
    if done.returncode != 0:
        raise EmulatorError(
            f"Compiling pubsub-jobs' emulator fix failed ({shlex.join(argv)}):\n"
            f"{done.stdout}{done.stderr}"
        )


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


def stop_on_signal() -> threading.Event:
    """For the foreground: from now on SIGINT/SIGTERM set the returned event instead of
    ending the process, so emulators started meanwhile are still stopped."""
    event = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: event.set())
    return event


def run_until_signalled(processes: Sequence[EmulatorProcess], stop: threading.Event) -> None:
    """Wait for ``stop`` (see :func:`stop_on_signal`), then stop ``processes``, last first."""
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for process in reversed(processes):
            process.stop()


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
        description="Start or stop Google's Pub/Sub emulator (with pubsub-jobs' fixes).",
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
