"""The Django backend and worker against the emulators, with the project in tests/django_project.

Runs on Django 6 (``django.tasks``; tests/emulator/test_django6.py runs this file in the Python
3.12 virtualenv) and on Django 5.2 with the django-tasks backport (the main virtualenv).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pubsub_jobs import Settings
from pubsub_jobs.adapters.clients import subscriber_client
from pubsub_jobs.adapters.pubsub import PubSubAdapter
from pubsub_jobs.message import JobMessage
from pubsub_jobs.worker import Worker
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "tests" / "django_project" / "manage.py"
DOC = ROOT / "docs" / "django.md"
SETTINGS_MODULE = "tests.django_project.settings"
PREFIX = "tests.django_project.testapp.tasks."


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def signals(project: Any) -> Iterator[list[tuple[str, str, str, int]]]:
    """(signal, task path, status, attempts) for each task signal sent during the test."""
    from pubsub_jobs.adapters.django import _compat

    sent: list[tuple[str, str, str, int]] = []
    lock = threading.Lock()
    receivers = []
    for name in ("task_enqueued", "task_started", "task_finished"):
        def receive(sender: Any, task_result: Any, _name: str = name, **kwargs: Any) -> None:
            with lock:
                sent.append((_name, task_result.id, str(task_result.status),
                             len(task_result.worker_ids)))
        getattr(_compat, name).connect(receive, weak=False)
        receivers.append((name, receive))
    yield sent
    for name, receive in receivers:
        getattr(_compat, name).disconnect(receive)


def project_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a worker process of the project: the test's prefix and emulators;
    a project id that OPTIONS must override."""
    from django.conf import settings as django_settings

    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        PUBSUB_EMULATOR_HOST=str(settings.pubsub_emulator_host),
        PUBSUB_JOBS_PROJECT_ID="not-the-project",
        PUBSUB_JOBS_PREFIX=settings.prefix,
        PUBSUB_JOBS_QUEUE_DEFAULTS=settings.queue_defaults.model_dump_json(),
        PUBSUB_JOBS_TEST_DJANGO_DB=str(django_settings.DATABASES["default"]["NAME"]),
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **extra,
    )
    return env


# ------------------------------------------------------------------- against the emulator


def test_enqueue_publishes_the_wire_format(
    pubsub_jobs_settings: Settings, bootstrap_queues, project: Any, signals, tag: str
) -> None:
    bootstrap_queues("default")
    result = project.record.enqueue(tag, value=3)
    assert str(result.status) == "READY" and result.enqueued_at is not None
    assert signals == [("task_enqueued", result.id, "READY", 0)]
    subscriber = subscriber_client(pubsub_jobs_settings)
    response = subscriber.pull(
        subscription=pubsub_jobs_settings.subscription_path("default"), max_messages=1,
        timeout=30,
    )
    [received] = response.received_messages
    message = received.message
    assert json.loads(message.data) == {"args": [tag], "kwargs": {"value": 3}}
    attributes = dict(message.attributes)
    assert attributes["job_name"] == PREFIX + "record"
    assert attributes["job_id"] == result.id
    assert attributes["queue_name"] == "default" and attributes["wire_version"] == "1"
    subscriber.acknowledge(subscription=pubsub_jobs_settings.subscription_path("default"),
                           ack_ids=[received.ack_id])


def test_worker_runs_tasks_with_signals_context_and_connections(
    bootstrap_queues, drain_queues, project: Any, runs, signals, tag: str
) -> None:
    from asgiref.sync import async_to_sync

    tasks = project
    bootstrap_queues("default", "mailers")
    tasks.CONNECTIONS.clear()
    sync = tasks.record.enqueue(tag, value=5)
    coro = async_to_sync(tasks.arecord.aenqueue)(tag)  # aenqueue, of an async task
    flaky = tasks.flaky.enqueue(tag)
    drain_queues("default", "mailers", idle=1.5)

    [record] = runs(tag, "record")
    assert (record.value, record.job_id) == (5, sync.id)
    [arecord] = runs(tag, "arecord")
    assert arecord.job_id == coro.id
    assert [(r.attempt, r.job_id) for r in runs(tag, "flaky")] == [(1, flaky.id), (2, flaky.id)]

    def of(result: Any) -> list[tuple[str, str, int]]:
        return [(name, status, attempts) for name, rid, status, attempts in signals
                if rid == result.id]

    for result in (sync, coro):
        assert of(result) == [("task_enqueued", "READY", 0), ("task_started", "RUNNING", 1),
                              ("task_finished", "SUCCESSFUL", 1)]
    assert of(flaky) == [
        ("task_enqueued", "READY", 0),
        ("task_started", "RUNNING", 1), ("task_finished", "FAILED", 1),
        ("task_started", "RUNNING", 2), ("task_finished", "SUCCESSFUL", 2),
    ]
    # Each task's database connection is closed after it, as after a request (CONN_MAX_AGE=0).
    assert len(tasks.CONNECTIONS) == 2
    assert all(conn.connection is None for conn in tasks.CONNECTIONS)


def test_failures_and_strangers_are_dead_lettered(
    pubsub_jobs_settings: Settings, bootstrap_queues, dead_letters, project: Any,
    signals, tag: str
) -> None:
    tasks = project
    bootstrap_queues("default")
    broken = tasks.broken.enqueue(tag)
    adapter = PubSubAdapter(pubsub_jobs_settings)
    strangers = {
        "tests.django_project.testapp.dangerous.boom": "unknown_job",  # never imported
        PREFIX + "elsewhere": "unknown_job",  # a task of another backend
        PREFIX + "record": "invalid_arguments",  # does not fit the function
    }
    ids = {}
    for name in strangers:
        args = [] if name.endswith("record") else [tag]
        ids[adapter.publish(JobMessage(job_name=name, queue="default", args=args,
                                       kwargs={})).job_id] = name
    adapter.close()
    worker = Worker(["default"], settings=pubsub_jobs_settings)
    worker.start()
    try:
        dead = {d.job_id: d for d in dead_letters("default", expect=4, timeout=60)}
    finally:
        worker.stop()
    assert dead[broken.id].reason == "max_attempts"
    assert dead[broken.id].attributes["job_name"] == PREFIX + "broken"
    assert "ValueError: broken" in dead[broken.id].attributes["dead_letter_error"]
    assert {ids[i]: dead[i].reason for i in ids} == strangers
    assert "tests.django_project.testapp.dangerous" not in sys.modules
    finished = [s for s in signals if s[0] == "task_finished" and s[1] == broken.id]
    assert [(status, attempts) for _, _, status, attempts in finished] == [
        ("FAILED", n) for n in range(1, 6)
    ]


def test_run_after_waits_in_cloud_tasks(
    delayed_jobs_settings: Settings, bootstrap_queues, project: Any,
    runs, tag: str
) -> None:
    from django.utils import timezone

    bootstrap_queues("default", settings=delayed_jobs_settings)
    worker = Worker(["default"], settings=delayed_jobs_settings)
    worker.start()
    try:
        run_after = timezone.now() + timedelta(seconds=3)
        result = project.record.using(run_after=run_after).enqueue(tag)
        assert str(result.status) == "READY"
        wait_for(lambda: bool(runs(tag)))
    finally:
        worker.stop()
    [run] = runs(tag)
    assert run.job_id == result.id
    assert run.scheduled_at == run_after  # the message carried it
    assert run.ran_at >= run_after


def test_enqueue_on_commit(
    bootstrap_queues, drain_queues, project: Any, runs, signals, tag: str
) -> None:
    from django.db import transaction

    on_commit = project.record.using(backend="on_commit")
    bootstrap_queues("default")

    class Rollback(Exception):
        pass

    with transaction.atomic():
        kept = on_commit.enqueue(tag, value=1)
        assert kept.enqueued_at is None and signals == []  # not published yet
    assert kept.enqueued_at is not None
    assert signals == [("task_enqueued", kept.id, "READY", 0)]
    with pytest.raises(Rollback), transaction.atomic():
        dropped = on_commit.enqueue(tag, value=2)
        raise Rollback
    assert dropped.enqueued_at is None
    at_once = on_commit.enqueue(tag, value=3)  # outside a transaction: published now
    assert at_once.enqueued_at is not None

    drain_queues("default", idle=1.0)
    assert sorted(r.value for r in runs(tag)) == [1, 3]


@pytest.mark.parametrize("how", ["manage.py", "pubsub-jobs"])
def test_worker_commands(
    how: str, pubsub_jobs_settings: Settings, bootstrap_queues, project: Any, runs, tag: str
) -> None:
    """`manage.py pubsub_worker` (queues from QUEUES) and `pubsub-jobs worker` with
    DJANGO_SETTINGS_MODULE: tasks of installed apps and of modules named on the command
    line, with OPTIONS winning over the environment (PUBSUB_JOBS_PROJECT_ID is wrong)."""
    from tests.django_project import extra_tasks

    bootstrap_queues("default", "mailers")
    project.record.enqueue(tag)
    project.arecord.enqueue(tag)
    extra_tasks.extra.enqueue(tag)
    if how == "manage.py":
        command = [sys.executable, str(MANAGE), "pubsub_worker"]
        env = project_env(pubsub_jobs_settings)
    else:
        command = [sys.executable, "-m", "pubsub_jobs", "worker", "--queue", "default",
                   "--queue", "mailers"]
        env = project_env(pubsub_jobs_settings, DJANGO_SETTINGS_MODULE=SETTINGS_MODULE)
    command += ["tests.django_project.extra_tasks", "--burst", "--burst-idle", "1"]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(r.task for r in runs(tag)) == ["arecord", "extra", "record"]
    assert "django tasks: " in proc.stderr


def test_other_commands_take_the_backend_settings(
    pubsub_jobs_settings: Settings, bootstrap_queues, drain_queues, project: Any, runs, tag: str
) -> None:
    """`pubsub-jobs enqueue` of a task's module_path, with OPTIONS winning over the
    environment (PUBSUB_JOBS_PROJECT_ID is wrong there)."""
    bootstrap_queues("default")
    env = project_env(pubsub_jobs_settings, DJANGO_SETTINGS_MODULE=SETTINGS_MODULE)
    proc = subprocess.run(
        [sys.executable, "-m", "pubsub_jobs", "enqueue", project.record.module_path,
         "--args", json.dumps([tag])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    drain_queues("default", idle=1.0)
    assert [r.task for r in runs(tag)] == ["record"]


# ---------------------------------------------------------------------------- the README


def readme_blocks() -> list[tuple[str, str]]:
    """The ```python blocks of docs/django.md: (kind, code)."""
    text = DOC.read_text()
    blocks = re.findall(
        r"<!-- readme-test: skip-django ([^>]*?) ?-->\s*```python\n(.*?)```", text, re.S
    )
    assert len(blocks) == text.count("```python\n"), "every python block needs a marker"
    return blocks


def test_readme_examples_run(
    delayed_jobs_settings: Settings, bootstrap_queues, drain_queues, project: Any,
    tmp_path: Path, monkeypatch
) -> None:
    """The README's settings, tasks module and enqueues, with the test's project and queues
    (and on the backport, ``django_tasks`` for ``django.tasks``)."""
    from django.core import mail
    from django.test import override_settings

    from pubsub_jobs.adapters.django import _compat
    from pubsub_jobs.adapters.django.worker import discover_tasks, task_registry

    blocks = readme_blocks()
    namespace: dict[str, Any] = {}
    [settings_code] = [code for kind, code in blocks if kind == "settings"]
    exec(compile(settings_code, str(DOC), "exec"), namespace)  # noqa: S102
    assert "pubsub_jobs.adapters.django" in namespace["INSTALLED_APPS"]
    tasks_setting = namespace["TASKS"]
    options = tasks_setting["default"]["OPTIONS"]
    assert options["cloud_tasks_location"] == delayed_jobs_settings.cloud_tasks_location
    tasks_setting["default"]["OPTIONS"] = {**options, "project_id": "test-project"}
    for kind, code in blocks:
        if kind.startswith("module "):
            path = tmp_path / kind.split()[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.parent / "__init__.py").touch()
            path.write_text(code.replace("django.tasks", _compat.FRAMEWORK))
    monkeypatch.syspath_prepend(str(tmp_path))
    bootstrap_queues(*tasks_setting["default"]["QUEUES"], settings=delayed_jobs_settings)
    mail.outbox = []
    with override_settings(TASKS=tasks_setting):
        registry = task_registry(discover_tasks(["shop.tasks"]))
        assert len(registry) >= 2
        for kind, code in blocks:
            if kind == "exec":
                exec(compile(code, str(DOC), "exec"), {"__name__": "readme"})  # noqa: S102
        drain_queues(*tasks_setting["default"]["QUEUES"], registry=registry, idle=1.5)
    subjects = sorted(m.subject for m in mail.outbox)
    assert subjects == ["Your order 42", "Your order 43"]
    for name in [m for m in sys.modules if m == "shop" or m.startswith("shop.")]:
        del sys.modules[name]
