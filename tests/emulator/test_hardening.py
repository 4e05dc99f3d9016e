"""The worker survives anything a job or a message can do (against the emulator)."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pubsub_jobs import Settings
from pubsub_jobs.message import format_time
from pubsub_jobs.testing import publish_raw
from pubsub_jobs.worker import Worker
from tests import jobs_hardening as jobs
from tests.waiting import wait_for


@pytest.fixture
def hard(bootstrap_queues, pubsub_jobs_settings: Settings) -> Settings:
    bootstrap_queues("hard")
    jobs.RAN.clear()
    return pubsub_jobs_settings


def ran() -> Counter[str]:
    return Counter(name for name, _ in jobs.RAN)


def _attrs(**override: str) -> dict[str, str]:
    return {
        "job_id": str(uuid.uuid4()),
        "queue_name": "hard",
        "enqueued_at": format_time(datetime.now(UTC)),
        "wire_version": "1",
        **override,
    }


def test_system_exit_and_keyboard_interrupt_are_one_failed_attempt(
    hard, drain_queues, dead_letters
):
    """Item 1 and 2: a sync or async job raising SystemExit/KeyboardInterrupt is dead-lettered
    (max_attempts=1) like any failure; the worker and the jobs beside it go on."""
    for j in (jobs.exits, jobs.interrupts, jobs.async_exits, jobs.async_interrupts):
        j.enqueue()
    for n in range(5):
        jobs.async_ok.enqueue(n)
        jobs.slow_ok.enqueue(n)
    worker = drain_queues("hard", idle=2.0)
    assert worker.error is None
    counts = ran()
    assert counts["async_ok"] == 5 and counts["slow_ok"] == 5  # none lost, none twice
    for name in ("exits", "interrupts", "async_exits", "async_interrupts"):
        assert counts[name] == 1, name
    dead = dead_letters("hard", expect=4)
    assert sorted(d.job_name.rsplit(".", 1)[1] for d in dead) == [
        "async_exits", "async_interrupts", "exits", "interrupts"]
    assert {d.reason for d in dead} == {"max_attempts"}
    assert any("SystemExit" in d.error for d in dead)
    assert any("KeyboardInterrupt" in d.error for d in dead)
    # the event loop survived: a later async job still runs
    jobs.async_ok.enqueue(99)
    drain_queues("hard")
    assert ("async_ok", 99) in jobs.RAN


def test_a_raising_after_perform_does_not_run_the_job_again(hard, dead_letters, caplog):
    """Item 3: the job returned, then after_perform raised: acked, run once, logged."""
    middleware = jobs.RaisingAfterPerform()
    jobs.charge.enqueue(1)
    worker = Worker(["hard"], settings=hard, middleware=[middleware], burst=True, burst_idle=3)
    with caplog.at_level(logging.ERROR, "pubsub_jobs"):
        worker.run()
    assert jobs.RAN == [("charge", 1)]
    assert middleware.before == middleware.after == 1
    assert "after_perform" in caplog.text and "metrics backend unavailable" in caplog.text
    assert dead_letters("hard") == []


def test_a_validator_raising_anything_is_invalid_arguments(hard, drain_queues, dead_letters):
    """Item 9: a validator's LookupError dead-letters at once as invalid_arguments."""
    publish_raw("hard", b'{"args": ["x"], "kwargs": {}}',
                _attrs(job_name="tests.jobs_hardening.validated"), settings=hard)
    drain_queues("hard")
    [dead] = dead_letters("hard", expect=1)
    assert dead.reason == "invalid_arguments"
    assert "LookupError" in dead.error
    assert dead.attempts == 1
    assert ran()["validated"] == 0


def test_queue_name_attribute_does_not_move_a_job(hard, bootstrap_queues, drain_queues,
                                                  dead_letters, caplog):
    """Item 5: a message on queue hard's topic naming another queue (or ../) is hard's."""
    bootstrap_queues("other")
    for name in ("other", "../../evil", "nowhere"):
        publish_raw("hard", b'{"args": [], "kwargs": {}}',
                    _attrs(job_name="tests.jobs_hardening.exits", queue_name=name), settings=hard)
    with caplog.at_level(logging.WARNING, "pubsub_jobs"):
        drain_queues("hard")
    assert ran()["exits"] == 3
    assert len(dead_letters("hard", expect=3)) == 3   # hard's dead set, not other's
    assert dead_letters("other") == []
    assert "decides its retries and dead letters" in caplog.text


def test_abbreviated_options_are_refused(hard):
    """Item 12: `--proc 2` is not taken for --processes (which made every child a
    supervisor spawning children without end)."""
    result = subprocess.run(
        [sys.executable, "-m", "pubsub_jobs", "worker", "tests.jobs_hardening",
         "--queue", "hard", "--proc", "2"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "unrecognized arguments: --proc" in result.stderr


def test_supervised_children_get_options_not_a_command_line(hard, tmp_path):
    """Item 12: the supervisor hands each child its options as data; children never become
    supervisors and never bind the supervisor's port."""
    from pubsub_jobs.emulator import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pubsub_jobs", "worker", "tests.jobs_hardening",
         "--queue", "hard", "--processes", "2", "--http-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        import json
        import urllib.request

        def status():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
                    return json.load(r)
            except OSError:
                return None

        data = wait_for(lambda: (s := status()) and len(s["processes"]) == 2
                        and all(p["status"] == "ok" for p in s["processes"]) and s,
                        timeout=60, what="two children reporting")
        assert data["status"] == "ok"
        children = wait_for(lambda: len(c := _children(proc.pid)) == 2 and c, timeout=60,
                            what="two worker processes")
        time.sleep(2)
        for child in children:  # no grandchildren: no child is a supervisor
            assert _children(child) == []
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_status_port_bounds_silent_connections_and_answers_head(hard):
    """Item 13: silent connections cannot pile up threads; HEAD /healthz answers 200."""
    import http.client
    import socket
    import threading

    from pubsub_jobs.emulator import free_port
    from pubsub_jobs.worker import status as status_module

    port = free_port()
    worker = Worker(["hard"], settings=hard, http_port=port)
    worker.start()
    try:
        before = threading.active_count()
        silent = []
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            silent.append(s)
        time.sleep(0.5)
        assert threading.active_count() - before <= status_module.MAX_CONNECTIONS + 2
        for s in silent:
            s.close()

        def head() -> int | None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("HEAD", "/healthz")
                response = conn.getresponse()
                assert response.read() == b""
                return response.status
            except OSError:
                return None

        assert wait_for(head, timeout=status_module.READ_TIMEOUT + 10, what="HEAD") == 200
    finally:
        worker.stop()


def test_a_subscription_without_dead_letter_policy_is_refused(pubsub_jobs_settings):
    """Item 14: without a dead-letter policy Pub/Sub sends no delivery attempt, so failures
    could not be counted: the worker refuses the queue and names the command that fixes it."""
    from pubsub_jobs import ConfigurationError
    from pubsub_jobs.adapters.clients import pubsub_clients

    settings = pubsub_jobs_settings
    with pubsub_clients(settings) as (publisher, subscriber):
        publisher.create_topic(name=settings.topic_path("nodlq"))
        subscriber.create_subscription(name=settings.subscription_path("nodlq"),
                                       topic=settings.topic_path("nodlq"))
        try:
            worker = Worker(["nodlq"], settings=settings, burst=True)
            with pytest.raises(ConfigurationError, match="bootstrap --queue nodlq --update"):
                worker.run()
        finally:
            subscriber.delete_subscription(subscription=settings.subscription_path("nodlq"))
            publisher.delete_topic(topic=settings.topic_path("nodlq"))


def test_a_hanging_stop_dumps_the_stacks_and_exits_non_zero(hard):
    """Item 16: a graceful stop ends within --shutdown-timeout plus STOP_GRACE, whatever
    hangs; the log shows every thread's stack."""
    from pubsub_jobs.worker.run import STOP_GRACE

    proc = subprocess.Popen(
        [sys.executable, "-m", "pubsub_jobs", "worker", "tests.jobs_hang", "--queue", "hard",
         "--shutdown-timeout", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        time.sleep(4)  # started
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=1 + STOP_GRACE + 30)  # it ends; it never hangs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out
    assert "Timeout (0:00:11)!" in out and "Thread 0x" in out and "_hang" in out, out


LEASE = 60  # the default; 10 (the lease before) runs the job twice


def test_a_job_holding_the_gil_for_30_s_runs_once(hard, drain_queues, dead_letters):
    """Item 4: the lease keeper renews running jobs' leases often enough that a job holding
    the GIL for 30 s (no Python thread can renew meanwhile) keeps its message: it runs once."""
    jobs.holds_the_gil.enqueue(30)
    worker = drain_queues("hard", idle=5.0, lease_seconds=LEASE)
    assert jobs.RAN == [("holds_the_gil", 30)]
    assert worker.stats.processed == 1
    assert dead_letters("hard") == []


def test_a_message_too_big_once_decoded_is_dead_lettered_before_decoding(
    hard, drain_queues, dead_letters
):
    """Item 15: 9.9 MB of `[{},{},...]` would take ~240 MB decoded; flow control counts
    messages, not their size. It is refused before decoding and dead-lettered with a reason;
    an honest large message still runs."""
    import tracemalloc

    many = b'{"args": [[' + b"{}," * 3_300_000 + b'{}]], "kwargs": {}}'
    publish_raw("hard", many, _attrs(job_name="tests.jobs_hardening.charge"), settings=hard)
    tracemalloc.start()
    drain_queues("hard")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    [dead] = dead_letters("hard", expect=1)
    assert dead.reason == "invalid_message"
    assert "once decoded" in dead.error and "PUBSUB_JOBS_MAX_DECODED_MESSAGE_MB" in dead.error
    assert peak < 150 * 2**20  # it was never decoded (decoding alone takes ~240 MB)
    jobs.charge.enqueue(7)
    drain_queues("hard")
    assert ("charge", 7) in jobs.RAN


def test_the_readme_gcloud_example_runs_verbatim_and_fits_the_schema(pubsub_emulator):
    """The wire format's `gcloud pubsub topics publish` block (docs/jobs.md), run as
    printed (only the emulator's endpoint set, as the page says), publishes a message the
    JSON Schema and the worker both accept."""
    import os
    import re
    import shutil

    import jsonschema

    from pubsub_jobs.message import JobMessage, schema

    readme = (Path(__file__).resolve().parents[2] / "docs" / "jobs.md").read_text()
    [block] = [b for b in re.findall(r"```bash\n(.*?)```", readme, re.S)
               if "gcloud pubsub topics publish" in b]
    project = f"readme-{uuid.uuid4().hex[:8]}"
    from pubsub_jobs.adapters.clients import pubsub_clients

    settings = Settings(project_id=project, pubsub_emulator_host=pubsub_emulator)
    with pubsub_clients(settings) as (publisher, subscriber):
        topic = f"projects/{project}/topics/jobs-mailers"
        subscription = f"projects/{project}/subscriptions/readme"
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDSDK_")}
        env.update(PUBSUB_JOBS_PROJECT_ID=project,
                   CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB=f"http://{pubsub_emulator}/",
                   CLOUDSDK_AUTH_ACCESS_TOKEN="emulator")  # noqa: S106 - the emulator's
        assert shutil.which("gcloud")
        result = subprocess.run(["bash", "-c", block], env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        response = subscriber.pull(subscription=subscription, max_messages=1, timeout=30)
        [received] = response.received_messages
        data, attributes = received.message.data, dict(received.message.attributes)
        jsonschema.validate({"data": json.loads(data), "attributes": attributes}, schema(),
                            format_checker=jsonschema.FormatChecker())
        message = JobMessage.decode(data, attributes)
        assert message.job_name == "myapp.jobs.send_welcome" and message.args == [42]


def test_a_failure_is_logged_once_when_the_logging_middleware_is_on(hard, caplog):
    """Issue 20: with StructuredLogging each job has one line; the core does not repeat it."""
    from pubsub_jobs.middleware.logging import StructuredLogging

    jobs.interrupts.enqueue()
    worker = Worker(["hard"], settings=hard, middleware=[StructuredLogging()], burst=True,
                    burst_idle=2)
    with caplog.at_level(logging.INFO, "pubsub_jobs"):
        worker.run()
    lines = [r for r in caplog.records
             if "interrupts" in r.getMessage() and "max_attempts" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "(ran " in lines[0].getMessage()
