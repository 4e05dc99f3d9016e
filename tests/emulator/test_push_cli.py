"""``pubsub-jobs push-server`` as an operator runs it: it refuses to start on wrong
authentication settings, serves the emulator's pushes, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pubsub_jobs.admin.topology import bootstrap, delete_topology
from pubsub_jobs.emulator import free_port
from pubsub_jobs.settings import Settings, configure
from tests import jobs_push
from tests.jobs_push import post
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBSUB_JOBS_PUSH_")}
    env["PYTHONPATH"] = str(ROOT)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _push_server(*args: str) -> list[str]:
    return [sys.executable, "-m", "pubsub_jobs", "push-server", "tests.jobs_push", *args]


@pytest.mark.parametrize(("changes", "says"), [
    ({"PUBSUB_JOBS_PUSH_AUTH": "none", "PUBSUB_EMULATOR_HOST": None},
     "PUBSUB_JOBS_PUSH_AUTH=none is accepted only against the emulator"),
    ({"PUBSUB_JOBS_PUSH_AUTH": "oidc", "PUBSUB_EMULATOR_HOST": None},
     "needs PUBSUB_JOBS_PUSH_AUDIENCE and PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT"),
    ({"PUBSUB_JOBS_PUSH_AUTH": "basic"}, "PUBSUB_JOBS_PUSH_AUTH='basic'"),
], ids=["none-off-the-emulator", "oidc-unconfigured", "unknown-mode"])
def test_the_server_refuses_to_start_without_authentication(changes, says):
    env = _env(PUBSUB_JOBS_PROJECT_ID="p", **changes)
    result = subprocess.run(_push_server("--queue", "push", "--port", "0"), env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr


def test_the_server_runs_pushed_jobs_and_stops_on_sigterm(
    pubsub_jobs_settings: Settings, tmp_path: Path
):
    settings = configure(**{**pubsub_jobs_settings.model_dump(), "push_auth": "none"})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    record = tmp_path / "ran.txt"
    env = _env(PUBSUB_EMULATOR_HOST=settings.pubsub_emulator_host,
               PUBSUB_JOBS_PROJECT_ID=settings.project_id, PUBSUB_JOBS_PREFIX=settings.prefix,
               PUBSUB_JOBS_PUSH_AUTH="none", JOBS_PUSH_RECORD=str(record))
    log = tmp_path / "server.log"
    bootstrap(["push"], settings, push_endpoint=url)
    try:
        with log.open("w") as out:
            proc = subprocess.Popen(
                _push_server("--queue", "push", "--port", str(port), "--concurrency", "4",
                             ), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: _healthy(url), timeout=60, what="the push server")
            result = jobs_push.greet.enqueue("from the cli")
            wait_for(lambda: record.exists() and record.read_text(), what="the pushed job")
            assert record.read_text().split()[:2] == ["greet", result.job_id]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    finally:
        delete_topology(["push"], settings)
    text = log.read_text()
    assert "4 job(s) at once" in text
    assert "push server stopped" in text and "'processed': 1" in text


def _healthy(url: str) -> bool:
    try:
        return post(url, "/healthz", method="GET")[0] == 200
    except OSError:
        return False
