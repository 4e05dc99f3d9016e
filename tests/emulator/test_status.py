"""The worker's HTTP port and the --processes supervisor, against the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pubsub_jobs.emulator import free_port
from pubsub_jobs.worker import QueueSpec, Worker
from tests import jobs_core
from tests.emulator.test_cli import ROOT, cli_env
from tests.waiting import wait_for


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:  # noqa: S310
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError:
        return 0, "{}"


@pytest.fixture
def core(bootstrap_queues, pubsub_jobs_settings):
    bootstrap_queues("core")
    return pubsub_jobs_settings


def run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run)
    thread.start()
    return thread


def test_status_healthz_and_metrics(core, ran):
    port = free_port()
    worker = Worker([QueueSpec("core", concurrency=2)], settings=core, http_port=port)
    thread = run_in_thread(worker)
    try:
        wait_for(lambda: get(port, "/healthz")[0] == 200, what="the port")
        jobs_core.slow.enqueue(1.5)
        jobs_core.add.enqueue(1, 2)
        status = wait_for(lambda: (s := json.loads(get(port, "/status")[1])).get("in_flight") and s,
                          what="a running job")
        assert status["status"] == "ok"
        [running] = status["in_flight"]
        assert running["job_name"] == "tests.jobs_core.slow" and running["age_seconds"] >= 0
        assert status["queues"][0]["name"] == "core"
        assert status["queues"][0]["streams_running"] == 1
        assert status["queues"][0]["max_delivery_attempts"] == 5
        wait_for(lambda: json.loads(get(port, "/status")[1])["processed"] == 2)
        status = json.loads(get(port, "/status")[1])
        assert {"processed", "failed", "dead_lettered", "last_activity"} <= set(status)
        code, metrics = get(port, "/metrics")
        assert code == 200
        assert "pubsub_jobs_worker_processed_total 2" in metrics
        assert "pubsub_jobs_worker_stuck 0" in metrics
        assert get(port, "/nope")[0] == 404
    finally:
        worker.request_stop()
        thread.join(30)


def test_a_job_running_too_long_is_stuck(core, ran):
    port = free_port()
    worker = Worker(["core"], settings=core, http_port=port, stuck_after=0.5)
    thread = run_in_thread(worker)
    try:
        jobs_core.slow.enqueue(3.0)
        code, body = wait_for(lambda: "has run for" in (r := get(port, "/healthz"))[1] and r,
                              what="stuck")
        assert code == 503 and "tests.jobs_core.slow" in body
        status = json.loads(get(port, "/status")[1])
        assert status["status"] == "stuck"
        assert get(port, "/metrics")[1].count("pubsub_jobs_worker_stuck 1") == 1
        wait_for(lambda: get(port, "/healthz")[0] == 200, what="recovery after the job")
    finally:
        worker.request_stop()
        thread.join(30)


def test_only_failures_while_messages_arrive_is_stuck(core):
    from pubsub_jobs import Registry, job

    registry = Registry()

    @job(name="tests.jobs_core.add", queue="core", registry=registry)
    def always_down(a: int, b: int) -> None:
        raise ConnectionError("database is down")

    worker = Worker(["core"], settings=core, registry=registry, stuck_after=1.0)
    thread = run_in_thread(worker)
    try:
        jobs_core.add.enqueue(1, 1)  # fails and is redelivered over and over
        status = wait_for(lambda: (s := worker.status())["status"] == "stuck" and s,
                          what="stuck")
        assert any("no job has succeeded" in r for r in status["reasons"])
    finally:
        worker.request_stop()
        thread.join(30)


def test_a_failed_stream_is_stuck(pubsub_jobs_settings):
    worker = Worker(["missing"], settings=pubsub_jobs_settings)
    worker.start()
    try:
        status = wait_for(lambda: (s := worker.status())["status"] == "stuck" and s,
                          what="the stream to fail")
        assert any("missing-worker does not exist" in r for r in status["reasons"])
    finally:
        worker.stop()


def test_max_attempts_beyond_the_subscription_is_reported(core, caplog):
    from pubsub_jobs import Registry, job

    registry = Registry()

    @job(queue="core", max_attempts=9, registry=registry)
    def patient() -> None: ...

    worker = Worker(["core"], settings=core, registry=registry, burst=True, burst_idle=0.2)
    worker.run()
    assert "allows 9 attempts" in caplog.text and "dead-letters after 5" in caplog.text


def child_pids(status: dict) -> list[int]:
    return [p["pid"] for p in status["processes"] if p["pid"]]


def test_supervisor_runs_restarts_and_stops_its_children(core, tmp_path: Path):
    record = tmp_path / "ran.txt"
    port = free_port()
    env = cli_env(core, JOBS_CORE_RECORD=str(record))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pubsub_jobs", "worker", "tests.jobs_core", "--queue", "core",
         "--processes", "2", "--http-port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        jobs_core.add.enqueue_many([(i, 0) for i in range(20)])
        status = wait_for(
            lambda: (s := json.loads(get(port, "/status")[1])).get("processed") == 20 and s,
            timeout=60, what="20 jobs over two processes")
        assert status["status"] == "ok"
        pids = child_pids(status)
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)
        status = wait_for(
            lambda: (s := json.loads(get(port, "/status")[1])).get("restarts") == 1
            and len(child_pids(s)) == 2 and pids[0] not in child_pids(s)
            and s["status"] == "ok" and s,
            timeout=60, what="a restarted child")
        jobs_core.add.enqueue(100, 0)
        wait_for(lambda: "add" in record.read_text() and
                 any(line.endswith(" 100") for line in record.read_text().splitlines()),
                 timeout=60, what="a job on the restarted pool")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, output
        for pid in child_pids(status):
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
                f"/proc/{pid}/status").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
