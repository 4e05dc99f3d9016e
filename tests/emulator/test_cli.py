"""The command line against the emulator: bootstrap, worker --burst, SIGTERM, and publishing
a job from outside Python (gcloud, raw REST)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pubsub_jobs import Settings
from pubsub_jobs.message import format_time
from tests import jobs_core

ROOT = Path(__file__).resolve().parents[2]


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PUBSUB_EMULATOR_HOST=settings.pubsub_emulator_host or "",
        PUBSUB_JOBS_PROJECT_ID=settings.require_project(),
        PUBSUB_JOBS_PREFIX=settings.prefix,
        PUBSUB_JOBS_QUEUE_DEFAULTS=settings.queue_defaults.model_dump_json(),
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def pubsub_jobs(*args: str, env: dict[str, str], timeout: float = 90):
    return subprocess.run(
        [sys.executable, "-m", "pubsub_jobs", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def records(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split(" ", 2) for line in path.read_text().splitlines()]


def test_bootstrap_then_worker_burst(pubsub_jobs_settings, tmp_path):
    record = tmp_path / "ran.txt"
    env = cli_env(pubsub_jobs_settings, JOBS_CORE_RECORD=str(record))
    first = pubsub_jobs("bootstrap", "--queue", "core", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == 4
    again = pubsub_jobs("bootstrap", "--queue", "core", env=env)
    assert again.returncode == 0 and again.stdout.count("exists") == 4

    enq = pubsub_jobs("enqueue", "tests.jobs_core.add", "--args", "[2, 40]", env=env)
    assert enq.returncode == 0, enq.stderr
    job_id = enq.stdout.strip()
    jobs_core.async_add.enqueue(1, 1)

    worker = pubsub_jobs("worker", "tests.jobs_core", "--queue", "core", "--burst",
                         "--burst-idle", "1.5", env=env)
    assert worker.returncode == 0, worker.stderr
    ran = {(name, value) for name, _, value in records(record)}
    assert ran == {("add", "42"), ("async_add", "2")}
    assert [jid for name, jid, _ in records(record) if name == "add"] == [job_id]


def test_enqueue_refuses_bad_arguments_with_exit_code_2(pubsub_jobs_settings):
    env = cli_env(pubsub_jobs_settings)
    result = pubsub_jobs("enqueue", "tests.jobs_core.add", "--args", '["x", 1]', env=env)
    assert result.returncode == 2
    assert "argument 'a' is invalid" in result.stderr


def test_worker_without_subscription_exits_non_zero(pubsub_jobs_settings):
    result = pubsub_jobs("worker", "tests.jobs_core", "--queue", "absent", "--burst",
                         env=cli_env(pubsub_jobs_settings))
    assert result.returncode == 1
    assert "bootstrap --queue absent" in result.stderr


def test_sigterm_lets_the_running_job_finish_and_acks_it(
    pubsub_jobs_settings, bootstrap_queues, drain_queues, tmp_path, ran
):
    bootstrap_queues("core")
    record = tmp_path / "ran.txt"
    env = cli_env(pubsub_jobs_settings, JOBS_CORE_RECORD=str(record))
    jobs_core.slow.enqueue(2.0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pubsub_jobs", "worker", "tests.jobs_core", "--queue", "core"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not any(r[0] == "slow-start" for r in records(record)):
            assert time.monotonic() < deadline, "the job never started"
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert [r[0] for r in records(record)] == ["slow-start", "slow-end"]
    assert "SIGTERM: stopping" in output
    # acked before exit: nothing comes back
    drain_queues("core", idle=3.0)
    assert ran == []


def _wire_attributes(job_name: str) -> dict[str, str]:
    return {
        "job_name": job_name,
        "job_id": str(uuid.uuid4()),
        "queue_name": "core",
        "enqueued_at": format_time(datetime.now(UTC)),
        "wire_version": "1",
    }


def test_a_raw_rest_publish_enqueues_a_job(pubsub_jobs_settings, bootstrap_queues,
                                           drain_queues, ran):
    """Any language can enqueue: one POST to the Pub/Sub REST API."""
    bootstrap_queues("core")
    host = pubsub_jobs_settings.pubsub_emulator_host
    body = {"messages": [{
        "data": base64.b64encode(b'{"args": [5, 6], "kwargs": {}}').decode(),
        "attributes": _wire_attributes("tests.jobs_core.add"),
    }]}
    request = urllib.request.Request(
        f"http://{host}/v1/{pubsub_jobs_settings.topic_path('core')}:publish",
        data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert json.load(response)["messageIds"]
    drain_queues("core")
    assert ran == [("add", 11)]


def test_gcloud_publish_enqueues_a_job(pubsub_jobs_settings, bootstrap_queues,
                                       drain_queues, ran):
    """The README's `gcloud pubsub topics publish` example, against the emulator."""
    gcloud = shutil.which("gcloud")
    assert gcloud, "gcloud is needed for this test (it is installed with the emulator)"
    bootstrap_queues("core")
    attrs = _wire_attributes("tests.jobs_core.add")
    env = dict(
        os.environ,
        CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB=f"http://{pubsub_jobs_settings.pubsub_emulator_host}/",
        CLOUDSDK_AUTH_ACCESS_TOKEN="emulator",  # noqa: S106 - the emulator ignores it
        CLOUDSDK_CORE_PROJECT=pubsub_jobs_settings.require_project(),
    )
    result = subprocess.run(
        [gcloud, "pubsub", "topics", "publish", pubsub_jobs_settings.topic("core"),
         '--message={"args": [7, 8], "kwargs": {}}',
         "--attribute=" + ",".join(f"{k}={v}" for k, v in attrs.items())],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    drain_queues("core")
    assert ran == [("add", 15)]


def test_demo_runs_retries_and_dead_letters(pubsub_emulator, tmp_path):
    """The README's first command: `pubsub-jobs demo` (here on the session's emulator)."""
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=pubsub_emulator,
               PUBSUB_JOBS_PREFIX=f"demo{uuid.uuid4().hex[:8]}-")
    result = pubsub_jobs("demo", env=env, timeout=180)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "send_welcome(user_id=42, locale='ja')" in out
    assert "resize_image(" in out
    assert "succeeded on attempt 3" in out
    assert "reason=max_attempts attempts=3" in out
    assert "reason=invalid_message" in out
    # Jobs print from several threads: each line is one job's, never two run together.
    job_lines = [line for line in out.splitlines()
                 if any(f in line for f in ("send_welcome(", "resize_image(", "charge("))]
    assert len(job_lines) == 6, job_lines  # 4 welcomes, a resize, the charge's last attempt
    assert all(line.startswith("  ") and line.count("(") == 1 for line in job_lines), job_lines


def test_missing_credentials_are_one_sentence_not_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PUBSUB_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS",
                        "CLOUDSDK_CONFIG")}
    env.update(PUBSUB_JOBS_PROJECT_ID="p", HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "pubsub_jobs", "bootstrap", "--queue", "q"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no Google credentials found" in result.stderr
    assert "Traceback" not in result.stderr
