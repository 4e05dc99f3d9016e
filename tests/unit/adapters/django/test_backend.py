"""The Django backend without the emulator, with the project in tests/django_project: the
framework, options, capabilities, argument checks and task discovery (against the emulators:
tests/emulator/test_django.py).

Runs on Django 6 (``django.tasks``; tests/emulator/test_django6.py runs this file in the Python
3.12 virtualenv) and on Django 5.2 with the django-tasks backport (the main virtualenv).
"""

from __future__ import annotations

from typing import Any

import django
import pytest

from pubsub_jobs import InvalidArguments
from pubsub_jobs.jobs import default_registry

PREFIX = "tests.django_project.testapp.tasks."


# ------------------------------------------------------------------ backend, no emulator


def test_framework_matches_the_django_version(project: Any) -> None:
    from pubsub_jobs.adapters.django import _compat

    expected = "django.tasks" if django.VERSION >= (6,) else "django_tasks"
    assert _compat.FRAMEWORK == expected


def test_constructor_reads_no_environment_and_options_win(monkeypatch, project: Any) -> None:
    from pubsub_jobs import settings as pj_settings
    from pubsub_jobs.adapters.django import PubSubBackend
    from pubsub_jobs.adapters.django.backend import _shared

    pj_settings.reset()
    monkeypatch.setenv("PUBSUB_JOBS_PUBLISH_TIMEOUT", "not a number")
    backend = PubSubBackend("probe", {"OPTIONS": {"prefix": "opt-", "publish_attempts": 2}})
    with pytest.raises(ValueError, match="(?i)publish_timeout"):
        backend.settings  # noqa: B018  (read on first use only)
    monkeypatch.setenv("PUBSUB_JOBS_PUBLISH_TIMEOUT", "7")
    monkeypatch.setenv("PUBSUB_JOBS_PREFIX", "env-")
    monkeypatch.setenv("PUBSUB_JOBS_PROJECT_ID", "env-project")
    pj_settings.reset()
    settings = backend.settings
    assert (settings.prefix, settings.project_id) == ("opt-", "env-project")
    assert (settings.publish_attempts, settings.publish_timeout) == (2, 7.0)
    assert "probe" not in _shared  # no client yet
    pj_settings.reset()


def test_options_are_checked(project: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from pubsub_jobs.adapters.django import PubSubBackend

    with pytest.raises(ImproperlyConfigured, match="project_id"):
        PubSubBackend("probe", {"OPTIONS": {"projectid": "x"}})
    # Values are checked on first use, and by Django's system checks.
    [error] = PubSubBackend("probe", {"OPTIONS": {"publish_timeout": -1}}).check()
    assert error.id == "pubsub_jobs.E001" and "publish_timeout" in error.msg


def test_capabilities_are_declared_to_django(project: Any) -> None:
    from pubsub_jobs.adapters.django import PubSubBackend, _compat

    tasks = project
    assert PubSubBackend.supports_defer and PubSubBackend.supports_async_task
    assert not PubSubBackend.supports_get_result and not PubSubBackend.supports_priority
    with pytest.raises(_compat.InvalidTask, match="priority"):
        tasks.record.using(priority=10)
    with pytest.raises(NotImplementedError):
        tasks.record.get_result("some-id")
    with pytest.raises(_compat.InvalidTask, match="Queue"):
        tasks.record.using(queue_name="nowhere")


def test_arguments_are_checked_at_enqueue(project: Any) -> None:
    from datetime import UTC, datetime

    tasks = project
    with pytest.raises(InvalidArguments, match="JSON"):
        tasks.record.enqueue("tag", value=datetime.now(UTC))
    with pytest.raises(InvalidArguments, match="unexpected keyword"):
        tasks.record.enqueue("tag", colour="red")
    with pytest.raises(InvalidArguments, match="missing"):
        tasks.flaky.enqueue()  # context is not the caller's to give


def test_worker_finds_the_pubsub_tasks_of_apps_and_named_modules(project: Any) -> None:
    from pubsub_jobs.adapters.django.worker import discover_tasks

    found = {t.module_path for t in discover_tasks()}
    assert found == {PREFIX + name for name in ("record", "arecord", "flaky", "broken")}
    extra = {t.module_path for t in discover_tasks(["tests.django_project.extra_tasks"])}
    assert extra == found | {"tests.django_project.extra_tasks.extra"}
    # The app registered the installed apps' tasks when Django was set up.
    assert found <= {job.name for job in default_registry}
    assert PREFIX + "elsewhere" not in default_registry
