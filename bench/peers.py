"""The systems the headline compares, and the virtualenvs the peers run in.

Each peer (dramatiq with dramatiq-gcpubsub; Celery with kombu's gcpubsub transport) lives in
a virtualenv of its own under ``~/.cache/pubsub-jobs/bench-peers/NAME`` (``$XDG_CACHE_HOME``
is honoured), created by the benchmark on first use from ``bench/requirements/NAME.txt``,
where every package is pinned, so one command reproduces the table. The raw client and
pubsub-jobs run in the project's own interpreter. A peer that cannot be installed is not
dropped: :func:`prepare` returns the reason, and the table says it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pubsub_jobs.emulator.cache import cache_root

REQUIREMENTS = Path(__file__).resolve().parent / "requirements"
_STAMP = ".bench-installed"


@dataclass(frozen=True)
class System:
    """One system of the headline: how to enqueue with it and how to start its worker."""

    key: str
    title: str
    #: What its worker runs, for the table.
    setup: str
    #: Its virtualenv's requirements file, or None for the project's interpreter.
    requirements: Path | None = None

    def worker_argv(self, python: Path, streams: int) -> list[str]:
        """The command a user would type to start the worker, with ``python``'s scripts."""
        scripts = python.parent
        if self.key == "raw":
            return [str(python), "-m", "bench._sys_raw", "worker", "--streams", str(streams)]
        if self.key == "ours":
            queue = "bench" if streams == 1 else f"bench={10 * streams}x{streams}"
            return [str(python), "-m", "pubsub_jobs", "worker", "bench.jobs", "--queue", queue]
        if self.key == "dramatiq":
            return [str(scripts / "dramatiq"), "bench._sys_dramatiq",
                    "--processes", "1", "--threads", "8"]
        if self.key == "celery":
            return [str(scripts / "celery"), "-A", "bench._sys_celery", "worker",
                    "--pool", "threads", "--concurrency", "8"]
        raise ValueError(self.key)


RAW = System(
    "raw", "raw google-cloud-pubsub, `subscribe()` at its defaults",
    "PublisherClient().publish per job (default BatchSettings), then every future; "
    "SubscriberClient().subscribe(path, callback) K times with FlowControl() and the default "
    "scheduler, on a plain subscription; the callback decodes the JSON body, counts, acks",
)
OURS = System(
    "ours", "pubsub-jobs, `worker --queue bench`",
    "Job.enqueue_many(N calls) after `pubsub-jobs bootstrap`; `pubsub-jobs worker bench.jobs "
    "--queue bench` (defaults: concurrency 10, 1 stream, prefetch 40), or `--queue "
    "bench=(10K)xK` for K streams",
)
DRAMATIQ = System(
    "dramatiq", "dramatiq + dramatiq-gcpubsub, 1 process x 8 threads",
    "actor.send() per job, then every publish future (recorded: the broker keeps none); "
    "`dramatiq bench._sys_dramatiq --processes 1 --threads 8`",
    REQUIREMENTS / "dramatiq.txt",
)
CELERY = System(
    "celery", "Celery + kombu gcpubsub, threads x 8",
    "task.delay() per job, then every publish future (recorded: the transport keeps none); "
    "`celery -A bench._sys_celery worker --pool threads --concurrency 8`",
    REQUIREMENTS / "celery.txt",
)
PEERS = {s.key: s for s in (DRAMATIQ, CELERY)}
SYSTEMS = [RAW, OURS, DRAMATIQ, CELERY]


def pinned(system: System) -> dict[str, str]:
    """The pinned versions of the packages that make up a peer (for the report)."""
    if system.requirements is None:
        return {}
    wanted = {"dramatiq", "dramatiq-gcpubsub", "celery", "kombu", "google-cloud-pubsub",
              "grpcio"}
    out = {}
    for line in system.requirements.read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() in wanted:
            out[name.strip()] = version.strip()
    return out


def venv_dir(system: System) -> Path:
    return cache_root() / "bench-peers" / system.key


def prepare(system: System, timeout: float = 900.0) -> Path | str:
    """The interpreter that runs ``system``, installing its virtualenv on first use; or, when
    that cannot be done here, the reason as a sentence."""
    if system.requirements is None:
        return Path(sys.executable)
    venv = venv_dir(system)
    python = venv / "bin" / "python"
    stamp_text = _stamp_text(system.requirements)
    if _stamp_ok(venv / _STAMP, python, stamp_text):
        return python
    log = venv.with_name(venv.name + "-install.log")
    try:
        with _locked(venv.with_name(venv.name + ".lock")):
            if _stamp_ok(venv / _STAMP, python, stamp_text):
                return python
            log.write_text("")
            shutil.rmtree(venv, ignore_errors=True)
            _run([sys.executable, "-m", "venv", str(venv)], log, 300)
            _run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                  "--no-input", "--quiet", "-r", str(system.requirements)], log, timeout)
            (venv / _STAMP).write_text(stamp_text)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        tail = ""
        with contextlib.suppress(OSError):
            lines = [line for line in log.read_text().splitlines()
                     if line.strip() and "is ignored" not in line]
            tail = (": " + lines[-1].strip()[:200]) if lines else ""
        return f"could not install {system.requirements.name} into {venv} ({exc}){tail}"
    return python


def _stamp_text(requirements: Path) -> str:
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    return f"{digest}\npython {sys.version_info.major}.{sys.version_info.minor}\n"


def _stamp_ok(stamp: Path, python: Path, text: str) -> bool:
    try:
        return stamp.read_text() == text and python.exists()
    except OSError:
        return False


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock, so two benchmark runs (or tests) build a virtualenv once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], log: Path, timeout: float) -> None:
    with open(log, "ab") as out:
        out.write(f"# {' '.join(argv)}\n".encode())
        out.flush()
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv[-3:])}` exited with {done.returncode}")
