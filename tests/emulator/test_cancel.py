"""Cancelling jobs that wait in Cloud Tasks, against both emulators: ``EnqueuedJob.cancel()``,
``pubsub_jobs.cancel`` from another adapter (as another process would), ``pubsub-jobs
cancel`` and its exit codes, and a job waiting in a rate-limited queue's own Cloud Tasks
queue (``<prefix>Q-rate``).

"Never ran" is shown without timing: a job enqueued beside the cancelled one, due at the
same time, runs; after it, and a generous wait more, the cancelled one has not.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc

import pubsub_jobs
from pubsub_jobs import PubSubAdapter, Settings, cli
from pubsub_jobs import queues as queues_module
from pubsub_jobs.adapters.cloud_tasks import (
    cloud_tasks_client,
    task_name,
    tasks_queue_path,
    tasks_v2,
)
from pubsub_jobs.queues import queue as declare_queue
from pubsub_jobs.worker import Worker
from tests import jobs_delayed
from tests.jobs_delayed import QUEUE, runs
from tests.waiting import wait_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "cancel.md"
PUBSUB_JOBS = str(Path(sys.executable).with_name("pubsub-jobs"))

#: Due soon enough to wait for, late enough to cancel first on a loaded machine.
DUE = timedelta(seconds=3)
#: How long after the job due beside it a cancelled job still has not run: the emulator
#: dispatches due tasks every 0.1 s, and both were due at the same moment.
GENEROUS = 3.0


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex

def ran_job_ids(tag: str) -> list[str]:
    return [r.job_id for r in runs(tag)]


def the_control_ran_and_nothing_else(tag: str, control: str) -> list[str]:
    """Wait until ``control`` ran, then a generous while more; the job ids that ran."""
    wait_for(lambda: control in ran_job_ids(tag), what="the job due beside the cancelled one")
    time.sleep(GENEROUS)
    return ran_job_ids(tag)


def test_a_cancelled_delayed_job_never_runs(worker: Worker, tag: str, caplog) -> None:
    cancelled = jobs_delayed.remember.using(delay=DUE).enqueue(tag)
    control = jobs_delayed.remember.using(delay=DUE).enqueue(tag)
    assert cancelled.message_id is None  # held by Cloud Tasks
    with caplog.at_level(logging.INFO, logger="pubsub_jobs.adapters.cloud_tasks"):
        assert cancelled.cancel() is True
        assert cancelled.cancel() is False  # the second time: nothing waits any more
    assert f"cancelled job {cancelled.job_id} of queue {QUEUE!r}" in caplog.text
    assert "It already left Cloud Tasks (published to Pub/Sub" in caplog.text
    assert the_control_ran_and_nothing_else(tag, control.job_id) == [control.job_id]


def test_a_job_that_ran_cannot_be_cancelled(worker: Worker, tag: str) -> None:
    result = jobs_delayed.remember.using(delay=timedelta(seconds=1)).enqueue(tag)
    wait_for(lambda: ran_job_ids(tag) == [result.job_id], what="the delayed job to run")
    assert result.cancel() is False
    assert pubsub_jobs.cancel(result.job_id, queue=QUEUE) is False


def test_an_immediate_job_is_in_pub_sub_already(worker: Worker, tag: str, caplog) -> None:
    result = jobs_delayed.remember.enqueue(tag)
    assert result.message_id is not None
    with caplog.at_level(logging.INFO, logger="pubsub_jobs.message"):
        assert result.cancel() is False
    assert "a job already in Pub/Sub cannot be cancelled" in caplog.text
    wait_for(lambda: ran_job_ids(tag) == [result.job_id], what="the immediate job to run")


def test_cancel_by_job_id_from_another_process(worker: Worker, delayed: Settings,
                                               tag: str) -> None:
    """Only the queue and the job id travel: a fresh adapter (as in another process) finds
    the task by the same derivation."""
    cancelled = jobs_delayed.remember.using(delay=DUE).enqueue(tag)
    control = jobs_delayed.remember.using(delay=DUE).enqueue(tag)
    elsewhere = PubSubAdapter(delayed)
    try:
        assert pubsub_jobs.cancel(cancelled.job_id, queue="other", adapter=elsewhere) is False
        assert pubsub_jobs.cancel("no-such-job", queue=QUEUE, adapter=elsewhere) is False
        assert pubsub_jobs.cancel(cancelled.job_id, queue=QUEUE, adapter=elsewhere) is True
    finally:
        elsewhere.close()
    assert the_control_ran_and_nothing_else(tag, control.job_id) == [control.job_id]


def test_the_docs_example_runs(delayed: Settings, bootstrap_queues, capsys) -> None:
    bootstrap_queues("mailers", settings=delayed)
    [block, _] = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    namespace: dict[str, object] = {"__name__": "docs_cancel"}
    exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    assert capsys.readouterr().out == "cancelled: the reminder will not be sent\n"


# --------------------------------------------------------------------- the command line


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["--log-level", "WARNING", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_the_command_cancels_and_says_so(worker: Worker, delayed: Settings, tag: str,
                                         capsys) -> None:
    cancelled = jobs_delayed.remember.using(delay=DUE).enqueue(tag)
    control = jobs_delayed.remember.using(delay=DUE).enqueue(tag)
    where = tasks_queue_path(delayed, QUEUE)

    code, out, err = run_cli(capsys, "cancel", QUEUE, cancelled.job_id)
    assert (code, err) == (0, "")
    assert out == (f"cancelled job {cancelled.job_id} of queue {QUEUE} (it was waiting in "
                   f"Cloud Tasks queue {where})\n")

    code, out, err = run_cli(capsys, "cancel", QUEUE, cancelled.job_id)
    assert (code, out) == (1, "")
    assert err == (f"pubsub-jobs: job {cancelled.job_id} of queue {QUEUE} was not cancelled: "
                   f"it does not wait in Cloud Tasks queue {where}. It already left for "
                   "Pub/Sub (it will run, or ran; a job in Pub/Sub cannot be cancelled), or "
                   "no such job was enqueued delayed, unique or rate-limited\n")
    assert the_control_ran_and_nothing_else(tag, control.job_id) == [control.job_id]


def test_the_command_without_cloud_tasks_is_a_sentence(pubsub_jobs_settings: Settings,
                                                       capsys) -> None:
    code, out, err = run_cli(capsys, "cancel", QUEUE, "some-job")
    assert (code, out) == (2, "")
    assert err.startswith("pubsub-jobs: delayed, unique and rate-limited jobs need a Cloud "
                          "Tasks location: set PUBSUB_JOBS_CLOUD_TASKS_LOCATION")


# --------------------------------------------------------------------- a rate-limited queue


@pytest.fixture
def rated(delayed: Settings, bootstrap_queues: Callable[..., object]) -> Iterator[str]:
    """A queue declared with rate_limit, its topic and subscriptions."""
    name = f"rated-{uuid.uuid4().hex[:8]}"
    declare_queue(name, rate_limit=5)
    bootstrap_queues(name, settings=delayed)
    yield name
    queues_module.declared_queues.remove(name)


def test_a_missing_rate_queue_is_a_sentence(delayed: Settings, capsys) -> None:
    """A rate-limited queue nothing created (no bootstrap, no Terraform): its -rate queue is
    missing, which is a setting to fix, not a job that left."""
    name = f"unmade-{uuid.uuid4().hex[:8]}"
    declare_queue(name, rate_limit=5)
    try:
        code, out, err = run_cli(capsys, "cancel", name, "some-job")
        where = tasks_queue_path(delayed, name)
    finally:
        queues_module.declared_queues.remove(name)
    assert where.endswith(f"/queues/{delayed.rate_queue(name)}")
    assert (code, out) == (2, "")
    assert err.startswith(f"pubsub-jobs: Cloud Tasks queue {where} does not exist, so no job "
                          "waits in it")


def wait_in_rate_queue(settings: Settings, client: Any, queue: str, tag: str) -> str:
    """Enqueue a delayed job of rate-limited ``queue``: it waits in the queue's own -rate
    Cloud Tasks queue (tasks_queue_path), under task_name(...). Returns the job id."""
    adapter = PubSubAdapter(settings)
    try:
        result = jobs_delayed.remember.using(queue=queue, delay=DUE, adapter=adapter).enqueue(tag)
    finally:
        adapter.close()
    assert result.message_id is None  # held in Cloud Tasks, not published
    task = client.get_task(name=task_name(settings, queue, result.job_id))
    assert task.name.startswith(f"{tasks_queue_path(settings, queue)}/tasks/")
    return result.job_id


def test_a_job_waiting_in_a_rate_limited_queue_is_cancelled_there(
    delayed: Settings, rated: str, tag: str
) -> None:
    parent = tasks_queue_path(delayed, rated)
    assert parent.endswith(f"/queues/{delayed.rate_queue(rated)}")
    client = cloud_tasks_client(delayed)
    w = Worker([rated], settings=delayed)
    try:
        try:  # bootstrap makes it where rate-limited queues are routed; here, if it did not
            client.create_queue(parent=parent.rsplit("/queues/", 1)[0], queue=tasks_v2.Queue(
                name=parent, rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=5)))
        except gexc.AlreadyExists:
            pass
        cancelled = wait_in_rate_queue(delayed, client, rated, tag)
        control = wait_in_rate_queue(delayed, client, rated, tag)
        w.start()
        assert pubsub_jobs.cancel(cancelled, queue=rated) is True
        with pytest.raises(gexc.NotFound):
            client.get_task(name=task_name(delayed, rated, cancelled))
        assert the_control_ran_and_nothing_else(tag, control) == [control]
        assert pubsub_jobs.cancel(control, queue=rated) is False
    finally:
        w.stop()
        client.delete_queue(name=parent)
        client.transport.close()


def run_command(app_dir: Path, settings: Settings, *argv: str,
                **env: str) -> subprocess.CompletedProcess[str]:
    """``pubsub-jobs`` as a person runs it, with the test's settings in its environment."""
    environ = {
        **{name: value for name, value in os.environ.items()
           if not name.startswith("PUBSUB_JOBS_")},
        "PUBSUB_EMULATOR_HOST": settings.pubsub_emulator_host or "",
        "CLOUD_TASKS_EMULATOR_HOST": settings.cloud_tasks_emulator_host or "",
        "PUBSUB_JOBS_PROJECT_ID": settings.require_project(),
        "PUBSUB_JOBS_PREFIX": settings.prefix,
        "PUBSUB_JOBS_CLOUD_TASKS_LOCATION": settings.cloud_tasks_location or "",
        **env,
    }
    done = subprocess.run([PUBSUB_JOBS, *argv], cwd=app_dir, env=environ,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stdout + done.stderr
    return done


def test_the_command_finds_a_rate_limited_queue_that_the_app_declares(
    delayed: Settings, rated: str, tag: str, tmp_path: Path
) -> None:
    """``--app`` names the module that declares the queue with rate_limit: the command looks
    in that queue's -rate Cloud Tasks queue, in a process of its own."""
    (tmp_path / "rateapp.py").write_text(
        f"from pubsub_jobs import queue\n\nqueue({rated!r}, rate_limit=5)\n")
    parent = tasks_queue_path(delayed, rated)
    client = cloud_tasks_client(delayed)
    try:
        try:
            client.create_queue(parent=parent.rsplit("/queues/", 1)[0], queue=tasks_v2.Queue(
                name=parent, rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=5)))
        except gexc.AlreadyExists:
            pass
        job_id = wait_in_rate_queue(delayed, client, rated, tag)

        # Without the app, the queue is not known to be rate-limited: not found there.
        done = run_command(tmp_path, delayed, "cancel", rated, job_id)
        assert done.returncode == 1, done.stderr
        assert "does not wait in Cloud Tasks queue" in done.stderr
        assert delayed.cloud_tasks_queue in done.stderr

        done = run_command(tmp_path, delayed, "--app", "rateapp", "cancel", rated, job_id)
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        assert done.stdout == (f"cancelled job {job_id} of queue {rated} (it was waiting in "
                               f"Cloud Tasks queue {parent})\n")
        with pytest.raises(gexc.NotFound):
            client.get_task(name=task_name(delayed, rated, job_id))

        done = run_command(tmp_path, delayed, "--app", "rateapp", "cancel", rated, job_id)
        assert done.returncode == 1
        assert done.stderr.startswith(f"pubsub-jobs: job {job_id} of queue {rated} was not "
                                      f"cancelled: it does not wait in Cloud Tasks queue "
                                      f"{parent}.")

        done = run_command(tmp_path, delayed, "--app", "rateapp", "cancel", rated, job_id,
                           PUBSUB_JOBS_CLOUD_TASKS_LOCATION="")
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr.startswith(
            "pubsub-jobs: delayed, unique and rate-limited jobs need a Cloud Tasks location")
    finally:
        client.delete_queue(name=parent)
        client.transport.close()
