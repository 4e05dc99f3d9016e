"""Where each setting came from, in the words errors use: ``configure()`` at a file and line,
the environment, the emulator's stand-in project; and a missing queue's hint about the same
queue under another prefix (the commands against the emulator: tests/emulator/)."""

from __future__ import annotations

import sys

from pubsub_jobs import Settings
from pubsub_jobs.settings import (
    configure,
    describe_settings,
    get_settings,
    naming_hint,
    reset,
    setting_source,
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
        assert setting_source("prefix") == f"configure() at tests/unit/test_app_settings.py:{line}"
        assert describe_settings(settings) == (
            "project 'from-env' (from PUBSUB_JOBS_PROJECT_ID), prefix 'mine-' (from "
            f"configure() at tests/unit/test_app_settings.py:{line})"
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
        assert setting_source("prefix") == f"configure() at tests/unit/test_app_settings.py:{line}"
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


