"""pubsub-jobs' fixes for Pub/Sub emulator 0.8.20: which a jar needs, and compiling them.

Each fix is a replacement for one class of the emulator, shipped as Java source under
``java/`` beside this module, compiled with ``javac`` against the jar the first time it is
needed (into ``~/.cache/pubsub-jobs/emulator-fix/``, keyed by the jar and the source), and
put before the jar on the class path:

- :data:`STREAM_CANCEL_FIX`: ``io.grpc.InternalStatus`` with the
  ``asRuntimeException(Status, Metadata, boolean)`` overload that the emulator's grpc-core
  calls when a client cancels a stream; without it the emulator loses the messages it had
  handed to the cancelled streaming pull.
- :data:`REDELIVERY_FIX`: ``MessageBacklog$ExpireOutstandingMessagesRunnable`` that skips
  ack ids no longer outstanding and never throws; without it, on a subscription with a retry
  policy, the task that redelivers delayed messages can be cancelled for good by a
  NullPointerException.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import shutil
import subprocess  # noqa: S404 - we run javac with argument lists, no shell
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pubsub_jobs.emulator.cache import cache_root
from pubsub_jobs.emulator.classfile import parse_class, read_class
from pubsub_jobs.errors import EmulatorError

__all__ = [
    "FIXES",
    "MISSING_METHOD",
    "REDELIVERY_FIX",
    "RUNNABLE_CONSTRUCTOR",
    "STREAM_CANCEL_FIX",
    "UNPATCHED_ENV",
    "Fix",
    "compiled_fix",
    "find_javac",
    "fixes_needed",
    "jar_has_fixed_internal_status",
    "jar_needs_redelivery_fix",
]

logger = logging.getLogger(__name__)

UNPATCHED_ENV = "PUBSUB_JOBS_EMULATOR_UNPATCHED"
"""Set to ``1`` to run a buggy emulator without the fixes (when no ``javac`` is available)."""

JAVA_ROOT = Path(__file__).parent / "java"
"""The fixes' Java sources, in folders named by their packages."""

MISSING_METHOD = (
    b"asRuntimeException",
    b"(Lio/grpc/Status;Lio/grpc/Metadata;Z)Lio/grpc/StatusRuntimeException;",
)
"""The method of ``io.grpc.InternalStatus`` that 0.8.20's grpc-api lacks, as (name, descriptor)."""

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
RUNNABLE_CONSTRUCTOR = (b"<init>", f"(L{_V1}/MessageBacklog;)V".encode())
"""The constructor ``MessageBacklog`` calls on its runnable, as (name, descriptor)."""


@dataclass(frozen=True)
class Fix:
    """A class of the emulator that pubsub-jobs replaces: ``source`` (under ``java/``)
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


def jar_has_fixed_internal_status(jar: Path) -> bool:
    """Whether ``io.grpc.InternalStatus`` in ``jar`` declares
    ``asRuntimeException(Status, Metadata, boolean)`` (what ``javap`` would list)."""
    data = read_class(jar, "io/grpc/InternalStatus.class")
    if data is None:
        return True  # no grpc inside: nothing we know how to fix
    return MISSING_METHOD in parse_class(data, "io/grpc/InternalStatus").methods


def jar_needs_redelivery_fix(jar: Path) -> bool:
    """Whether ``MessageBacklog$ExpireOutstandingMessagesRunnable`` in ``jar`` can be cancelled
    by an unchecked exception (it refers to no catch-all exception class: 0.8.20 catches only
    ``StatusException``), and ``MessageBacklog`` has what the replacement uses. A jar with the
    flaw but another layout is run unfixed, with a warning."""
    runnable = read_class(jar, f"{_EXPIRE_RUNNABLE}.class")
    backlog = read_class(jar, _BACKLOG_CLASS)
    if runnable is None or backlog is None:
        return False  # not an emulator we know
    parsed = parse_class(runnable, _EXPIRE_RUNNABLE)
    if parsed.classes & _CATCH_ALL:
        return False  # guarded: a later emulator, or already fixed
    backlog_parsed = parse_class(backlog, _BACKLOG_CLASS)
    fits = (
        RUNNABLE_CONSTRUCTOR in parsed.methods
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


STREAM_CANCEL_FIX = Fix(
    class_name="io.grpc.InternalStatus",
    source=Path("io") / "grpc" / "InternalStatus.java",
    class_file=Path("io") / "grpc" / "InternalStatus.class",
    needed=lambda jar: not jar_has_fixed_internal_status(jar),
    reason="the jar lacks asRuntimeException(Status, Metadata, boolean)",
    loss="loses messages of cancelled streaming pulls",
)
REDELIVERY_FIX = Fix(
    class_name="MessageBacklog$ExpireOutstandingMessagesRunnable",
    source=Path(_V1) / "MessageBacklog$ExpireOutstandingMessagesRunnable.java",
    class_file=Path(f"{_EXPIRE_RUNNABLE}.class"),
    needed=jar_needs_redelivery_fix,
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
FIXES = (STREAM_CANCEL_FIX, REDELIVERY_FIX)


def fixes_needed(jar: Path) -> list[Fix]:
    """The fixes of :data:`FIXES` that ``jar`` needs, in class-path order."""
    return [fix for fix in FIXES if fix.needed(jar)]


def find_javac(java: str) -> str | None:
    """``javac`` next to the ``java`` we run (same JDK), else the first on PATH."""
    sibling = Path(java).resolve().parent / "javac"
    if os.access(sibling, os.X_OK):
        return str(sibling)
    return shutil.which("javac")


def compiled_fix(jar: Path, java: str, fix: Fix = STREAM_CANCEL_FIX) -> Path:
    """Compile ``fix`` against ``jar`` once, into a cache directory keyed by the jar and the
    sources; compiled in a temporary directory and renamed into place, so parallel processes
    never see a half-written result. The directory holds the fix's class file and nothing
    else (never a stub)."""
    try:
        source = (JAVA_ROOT / fix.source).read_bytes()
        parts = [str(jar.resolve()).encode(), str(jar.stat().st_size).encode(), source]
    except OSError as exc:
        raise EmulatorError(f"Cannot read the sources of the emulator fix: {exc}") from exc
    for stub_path, stub_source in fix.stubs:
        parts += [stub_path.encode(), stub_source.encode()]
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
    parent = cache_root() / "emulator-fix"
    final = parent / key
    if (final / fix.class_file).is_file():
        return final
    javac = find_javac(java)
    if javac is None:
        raise EmulatorError(
            f"Pub/Sub emulator jar {jar} needs pubsub-jobs' {fix.class_name} fix ({fix.reason}; "
            f"unfixed, it {fix.loss}). The fix is a small Java class, which needs `javac` (a "
            "JDK, e.g. `apt-get install openjdk-17-jdk-headless`) to compile. Or set "
            f"{UNPATCHED_ENV}=1 to run the emulator unfixed."
        )
    try:
        parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=parent))
    except OSError as exc:
        raise EmulatorError(f"Cannot compile the emulator fix in {parent}: {exc}") from exc
    try:
        return _compile_into(final, work, javac, jar, fix, source)
    except OSError as exc:
        raise EmulatorError(f"Cannot compile the emulator fix in {work}: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _compile_into(final: Path, work: Path, javac: str, jar: Path, fix: Fix, source: bytes) -> Path:
    """Compile ``fix`` (its stubs first) in ``work``, then rename the result to ``final``."""
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


def _javac(javac: str, work: Path, out: Path, classpath: list[str], sources: list[str]) -> None:
    """Compile ``sources`` for Java 8 into ``out``, in ``work`` (where a crashing javac leaves
    its ``javac.*.args``); only the named sources, never one found on the class path."""
    out.mkdir(parents=True)
    argv = [javac, "--release", "8", "-Xlint:-options", "-nowarn", "-implicit:none"]
    if classpath:
        argv += ["-cp", os.pathsep.join(classpath)]
    argv += ["-d", str(out), *sources]
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list
            argv, capture_output=True, text=True, timeout=120, check=False, cwd=work
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmulatorError(
            f"Compiling pubsub-jobs' emulator fix failed ({shlex.join(argv)}): {exc}"
        ) from exc
    if done.returncode != 0:
        raise EmulatorError(
            f"Compiling pubsub-jobs' emulator fix failed ({shlex.join(argv)}):\n"
            f"{done.stdout}{done.stderr}"
        )
