"""A queue declared ``exactly_once`` is pull only: ``push-server`` and ``bootstrap
--push-endpoint`` refuse it with one sentence and exit 2, before they make or serve
anything (Pub/Sub offers exactly-once delivery on pull subscriptions only). No emulator is
needed: both refuse before they connect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

APP = """\
from pubsub_jobs import job, queue

queue("payments", exactly_once=True)


@job(queue="payments")
def charge(n: int) -> None:
    pass
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "paymentsapp.py").write_text(APP)
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PUBSUB_JOBS_", "PUBSUB_EMULATOR", "CLOUD_TASKS_EMULATOR"))}
    env.update(PYTHONPATH=str(ROOT), PUBSUB_JOBS_PROJECT_ID="p",
               PUBSUB_EMULATOR_HOST="127.0.0.1:9", PUBSUB_JOBS_PUSH_AUTH="none")
    return subprocess.run([sys.executable, "-m", "pubsub_jobs", "--app", "paymentsapp", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_the_push_server_refuses_a_queue_declared_exactly_once(tmp_path: Path) -> None:
    done = _run(tmp_path, "push-server", "--queue", "payments", "--port", "0")
    assert done.returncode == 2, done.stderr
    assert ("queue 'payments' is declared exactly_once=True (queue() at paymentsapp.py:3), "
            "which Pub/Sub offers on pull subscriptions only, so a push endpoint cannot serve "
            "it: run its jobs with `pubsub-jobs worker --queue payments` and leave it out of "
            "the push endpoint's queues") in done.stderr
    assert "Traceback" not in done.stderr


def test_bootstrap_refuses_to_push_a_queue_declared_exactly_once(tmp_path: Path) -> None:
    """Nothing is created: the emulator address given leads nowhere (port 9), and bootstrap
    would fail to connect if it tried."""
    done = _run(tmp_path, "bootstrap", "--queue", "payments",
                "--push-endpoint", "http://127.0.0.1:8080")
    assert done.returncode == 2, done.stderr
    assert ("queue 'payments' is declared exactly_once=True, which Pub/Sub offers on pull "
            "subscriptions only") in done.stderr
    assert "Traceback" not in done.stderr
