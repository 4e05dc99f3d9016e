"""Finding the installed Pub/Sub emulator (its jar, or Google's launcher) and Java, and the
command line that runs it with the fixes it needs.

The jar is found through ``$PUBSUB_JOBS_EMULATOR_JAR``, the Cloud SDK of ``gcloud`` on PATH,
Google's launcher ``cloud-pubsub-emulator`` on PATH, or ``gcloud info``; Java through
``$JAVA_HOME`` or PATH. The jar is run with ``java`` directly, so that the fixes of
:mod:`pubsub_jobs.emulator.fixes` can go before it on the class path.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess  # noqa: S404 - we run gcloud with argument lists, no shell
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pubsub_jobs.emulator.fixes import UNPATCHED_ENV, Fix, compiled_fix, fixes_needed
from pubsub_jobs.emulator.process import EmulatorCommand
from pubsub_jobs.errors import EmulatorError

__all__ = [
    "DEFAULT_JVM_OPTS",
    "DEFAULT_MAIN_CLASS",
    "INSTALL_HINT",
    "JAR_ENV",
    "JVM_OPTS_ENV",
    "EmulatorInstallation",
    "find_pubsub_emulator",
]

JAR_ENV = "PUBSUB_JOBS_EMULATOR_JAR"
"""Environment variable that may point at the emulator's ``cloud-pubsub-emulator-*-all.jar``."""

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

    def fixes_needed(self) -> list[Fix]:
        """The fixes this jar needs: ``io.grpc.InternalStatus`` when it lacks the overload
        grpc-core calls; ``MessageBacklog$ExpireOutstandingMessagesRunnable`` when that task
        lets a NullPointerException cancel it."""
        if self.jar is None:
            return []
        return fixes_needed(self.jar)

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
                    fix_dir = compiled_fix(self.jar, self.java, fix)
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


def _jvm_opts() -> list[str]:
    """JVM options: ``$JAVA_OPTS`` then ``$CLOUD_PUBSUB_EMULATOR_OPTS`` (default ``-Xmx256m``),
    as Google's launcher reads them."""
    configured = os.environ.get(JVM_OPTS_ENV)
    try:
        opts = shlex.split(os.environ.get("JAVA_OPTS", ""))
        opts += shlex.split(configured) if configured is not None else list(DEFAULT_JVM_OPTS)
    except ValueError as exc:  # an unbalanced quote
        raise EmulatorError(f"Cannot read JAVA_OPTS or {JVM_OPTS_ENV}: {exc}") from exc
    return opts
