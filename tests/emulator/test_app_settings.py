"""One configuration for the application, the worker and every command, on the emulator.

``configure()`` in the application's module reaches a command given ``--app MODULE`` (or
``PUBSUB_JOBS_APP``); where a command did not see it, the error about the missing topic or
subscription names the mismatch: this process's prefix and where it came from, and the
queue's resources under the other prefix."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pubsub_jobs import Settings
from pubsub_jobs.admin.topology import BootstrapReport, ensure_cloud_tasks_queue

PUBSUB_JOBS = str(Path(sys.executable).with_name("pubsub-jobs"))

APP = """\
import pathlib

import pubsub_jobs
from pubsub_jobs import job

pubsub_jobs.configure(prefix={prefix!r})


@job(queue="reports")
def build(n: int) -> None:
    with open(pathlib.Path(__file__).with_name("built.txt"), "a") as out:
        out.write(f"{{n}}\\n")
"""


@pytest.fixture
def app_dir(tmp_path: Path, pubsub_jobs_settings: Settings) -> Path:
    """A directory holding ``myapp.py``, whose configure() sets a prefix of its own."""
    (tmp_path / "myapp.py").write_text(APP.format(prefix=f"{pubsub_jobs_settings.prefix}app-"))
    return tmp_path


def run(app_dir: Path, settings: Settings, *argv: str, **extra_env: str
        ) -> subprocess.CompletedProcess[str]:
    env = {
        **{name: value for name, value in os.environ.items() if name != "PUBSUB_JOBS_APP"},
        "PUBSUB_EMULATOR_HOST": settings.pubsub_emulator_host or "",
        "PUBSUB_JOBS_PROJECT_ID": settings.require_project(),
        "PUBSUB_JOBS_PREFIX": settings.prefix,  # what a command without the app uses
        "PUBSUB_JOBS_QUEUE_DEFAULTS": settings.queue_defaults.model_dump_json(),
        **extra_env,
    }
    return subprocess.run(list(argv), cwd=app_dir, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_command_without_the_app_is_named_as_the_mismatch(app_dir, pubsub_jobs_settings):
    settings = pubsub_jobs_settings
    app_prefix = f"{settings.prefix}app-"

    # The path: bootstrap does not import the app, so it uses the environment's prefix
    # and says so.
    done = run(app_dir, settings, PUBSUB_JOBS, "bootstrap", "--queue", "reports")
    assert done.returncode == 0, done.stderr
    assert f"prefix {settings.prefix!r} (from PUBSUB_JOBS_PREFIX)" in done.stderr
    assert f"{settings.prefix}reports-worker" in done.stdout

    # The worker imports the app: its error names its own prefix and source, and the
    # subscription bootstrap made under the other prefix, before anything says "started".
    done = run(app_dir, settings, PUBSUB_JOBS, "worker", "myapp", "--queue", "reports",
               "--burst")
    assert done.returncode == 1
    assert f"{app_prefix}reports-worker does not exist" in done.stderr
    assert f"prefix {app_prefix!r} (from configure() at myapp.py:6)" in done.stderr
    assert (f"{settings.prefix}reports-worker exists, made with prefix {settings.prefix!r}"
            in done.stderr)
    assert "--app MODULE" in done.stderr
    assert "worker started" not in done.stderr
    # configure() over a different environment variable is a warning of its own.
    assert f"sets prefix={app_prefix!r} over PUBSUB_JOBS_PREFIX={settings.prefix!r}" \
        in done.stderr

    # The application's enqueue says the same of the topic.
    done = run(app_dir, settings, sys.executable, "-c", textwrap.dedent("""
        import myapp
        from pubsub_jobs import TopicNotFound
        try:
            myapp.build.enqueue(1)
        except TopicNotFound as exc:
            print(exc)
        """))
    assert done.returncode == 0, done.stderr
    assert f"topics/{app_prefix}reports does not exist" in done.stdout
    assert f"{settings.prefix}reports exists, made with prefix {settings.prefix!r}" \
        in done.stdout

    # With the app, every command has its settings: bootstrap, enqueue, the worker.
    done = run(app_dir, settings, PUBSUB_JOBS, "--app", "myapp", "bootstrap",
               "--queue", "reports")
    assert done.returncode == 0, done.stderr
    assert f"{app_prefix}reports-worker" in done.stdout
    done = run(app_dir, settings, PUBSUB_JOBS, "enqueue", "myapp.build", "--args", "[7]",
               PUBSUB_JOBS_APP="myapp")
    assert done.returncode == 0, done.stderr
    done = run(app_dir, settings, PUBSUB_JOBS, "--app", "myapp", "worker", "--queue",
               "reports", "--burst", "--burst-idle", "1")
    assert done.returncode == 0, done.stderr
    assert (app_dir / "built.txt").read_text() == "7\n"


def test_an_app_that_cannot_be_imported_is_one_sentence(app_dir, pubsub_jobs_settings):
    done = run(app_dir, pubsub_jobs_settings, PUBSUB_JOBS, "--app", "nosuch", "queues")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"pubsub-jobs: --app nosuch: no module named 'nosuch' (from {app_dir}): run the "
        "command from the directory that holds it, or add that directory to PYTHONPATH"
    )


def test_bootstrap_twice_finds_the_cloud_tasks_queue(delayed_jobs_settings):
    settings = delayed_jobs_settings.model_copy(
        update={"cloud_tasks_queue": f"{delayed_jobs_settings.prefix}delayed"})
    first, second = BootstrapReport(), BootstrapReport()
    name = ensure_cloud_tasks_queue(settings, first)
    ensure_cloud_tasks_queue(settings, second)
    assert (first.created, first.existing) == ([name], [])
    assert (second.created, second.existing) == ([], [name])
