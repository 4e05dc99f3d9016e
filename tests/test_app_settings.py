"""One configuration for the application, the worker and every command.

``configure()`` in the application's module reaches a command given ``--app MODULE`` (or
``PUBSUB_JOBS_APP``); where a command did not see it, the error about the missing topic or
subscription names the mismatch: this process's prefix and where it came from, and the
queue's resources under the other prefix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pubsub_jobs import Settings
from pubsub_jobs.admin.topology import BootstrapReport, ensure_cloud_tasks_queue
from pubsub_jobs.settings import (
    configure,
    describe_settings,
    get_settings,
    naming_hint,
    reset,
    setting_source,
)

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


def test_each_value_says_where_it_came_from(monkeypatch):
    monkeypatch.setenv("PUBSUB_JOBS_PROJECT_ID", "from-env")
    monkeypatch.delenv("PUBSUB_JOBS_PREFIX", raising=False)
    reset()
    try:
        assert setting_source("prefix") == "the default"
        assert setting_source("project_id") == "PUBSUB_JOBS_PROJECT_ID"
        settings = configure(prefix="mine-")
        line = sys._getframe().f_lineno - 1
        assert setting_source("prefix") == f"configure() at tests/test_app_settings.py:{line}"
        assert describe_settings(settings) == (
            "project 'from-env' (from PUBSUB_JOBS_PROJECT_ID), prefix 'mine-' (from "
            f"configure() at tests/test_app_settings.py:{line})"
        )
        # Setting the same values again (as the worker does with all of them) keeps sources.
        configure(**{**get_settings().model_dump(), "publish_attempts": 2})
        assert setting_source("prefix").endswith(f":{line}")
        assert setting_source("project_id") == "PUBSUB_JOBS_PROJECT_ID"
    finally:
        reset()
    assert setting_source("prefix") == "the default"


def test_a_caller_of_the_package_names_itself(monkeypatch, caplog):
    """The command line, the pytest plugin and Django's backend pass ``origin=``: messages
    name them, not a file of the package, and their values over the environment are no
    warning (the application's own configure() call is the one to warn about)."""
    monkeypatch.setenv("PUBSUB_JOBS_PREFIX", "from-env-")
    reset()
    try:
        configure(prefix="cli-", origin="the command line")
        assert setting_source("prefix") == "the command line"
        assert not [r for r in caplog.records if r.name == "pubsub_jobs.settings"]
        configure(prefix="mine-")
        line = sys._getframe().f_lineno - 1
        assert setting_source("prefix") == f"configure() at tests/test_app_settings.py:{line}"
        [warning] = [r for r in caplog.records if r.name == "pubsub_jobs.settings"]
        assert "sets prefix='mine-' over PUBSUB_JOBS_PREFIX='from-env-'" in warning.message
    finally:
        reset()


def test_the_emulator_stand_in_project_is_named(monkeypatch):
    monkeypatch.delenv("PUBSUB_JOBS_PROJECT_ID", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    settings = Settings(pubsub_emulator_host="127.0.0.1:1")
    assert describe_settings(settings).startswith(
        "project 'local-project' (none is set: the emulator's stand-in)")


def test_a_mismatch_needs_the_queue_under_another_prefix():
    settings = Settings(project_id="p", prefix="myapp-")
    bootstrapped = {"jobs-reports", "jobs-reports-dead-letter"}
    assert "jobs-reports exists, made with prefix 'jobs-'" in naming_hint(
        settings, "reports", bootstrapped)
    # A topic that merely ends with the queue's name is not taken for it.
    assert "exists" not in naming_hint(settings, "reports", {"monthly-reports"})
    assert "exists" not in naming_hint(settings, "reports", set())
    subscriptions = {"jobs-reports-worker", "jobs-reports-dead-letter"}
    assert "jobs-reports-worker exists" in naming_hint(
        settings, "reports", subscriptions, subscription=True)


@pytest.mark.emulator
def test_bootstrap_twice_finds_the_cloud_tasks_queue(delayed_jobs_settings):
    settings = delayed_jobs_settings.model_copy(
        update={"cloud_tasks_queue": f"{delayed_jobs_settings.prefix}delayed"})
    first, second = BootstrapReport(), BootstrapReport()
    name = ensure_cloud_tasks_queue(settings, first)
    ensure_cloud_tasks_queue(settings, second)
    assert (first.created, first.existing) == ([name], [])
    assert (second.created, second.existing) == ([], [name])
