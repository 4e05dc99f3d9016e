"""Tests of pubsub_jobs.emulator: finding, starting and stopping the Pub/Sub emulator, and
the fixes for emulator 0.8.20, which loses messages of cancelled streaming pulls and can stop
redelivering messages of subscriptions with a retry policy."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from google.cloud import pubsub_v1

from pubsub_jobs import Settings
from pubsub_jobs.adapters.clients import publisher_client, subscriber_client
from pubsub_jobs.emulator import (
    EmulatorProcess,
    find_pubsub_emulator,
    fixes,
    free_port,
    pubsub_emulator_ready,
    start_pubsub_emulator,
    stop_detached_pubsub_emulator,
    stop_detached_tasks_emulator,
)
from pubsub_jobs.emulator.classfile import parse_class
from pubsub_jobs.emulator.process import proc_cmdline
from pubsub_jobs.emulator.pubsub import pid_file
from pubsub_jobs.errors import EmulatorAlreadyRunning, EmulatorError

PROJECT = "test-project"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator for the tests of this module that only use it."""
    log_path = tmp_path_factory.mktemp("emulator") / "pubsub-emulator.log"
    process = start_pubsub_emulator(free_port(), log_path=log_path, timeout=60)
    try:
        yield process
    finally:
        process.stop()


def test_start_ready_stop(tmp_path: Path) -> None:
    port = free_port()
    process = start_pubsub_emulator(port, log_path=tmp_path / "emulator.log")
    try:
        assert process.host == f"127.0.0.1:{port}"
        assert process.env() == {"PUBSUB_EMULATOR_HOST": f"127.0.0.1:{port}"}
        assert pubsub_emulator_ready(process.host)
        assert process.is_running()
        assert process.patched == find_pubsub_emulator().needs_fix()
        assert process.log_path == tmp_path / "emulator.log"
        assert "Server started" in process.log_path.read_text()
    finally:
        process.stop()
    assert not pubsub_emulator_ready(process.host)
    assert not process.is_running()
    assert not _pid_alive(process.pid)
    process.stop()  # idempotent


def test_cancelled_streaming_pull_does_not_lose_messages(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publish m1, receive it on a streaming pull, cancel the stream (as every worker stop
    does), publish m2: m2 must be delivered. Unfixed 0.8.20 never delivers it."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    suffix = uuid.uuid4().hex[:8]
    topic = publisher.topic_path(PROJECT, f"topic-{suffix}")
    subscription = subscriber.subscription_path(PROJECT, f"sub-{suffix}")
    received: list[bytes] = []
    arrived = threading.Event()

    def callback(message: pubsub_v1.subscriber.message.Message) -> None:
        received.append(message.data)
        message.ack()
        arrived.set()

    def publish_and_receive(data: bytes, lost: str) -> None:
        """Publish ``data``, wait for it on a new streaming pull, then cancel that stream."""
        arrived.clear()
        publisher.publish(topic, data).result(timeout=10)
        future = subscriber.subscribe(subscription, callback)
        try:
            assert arrived.wait(15), lost
        finally:
            future.cancel()
            future.result(timeout=10)

    try:
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=10)

        publish_and_receive(b"m1", "m1 was not delivered")
        assert received == [b"m1"]
        publish_and_receive(b"m2", "m2 was lost after the first stream was cancelled")
        assert received == [b"m1", b"m2"]
    finally:
        subscriber.close()
        publisher.stop()

    log = emulator.log_path.read_text(errors="replace")
    assert "NoSuchMethodError" not in log
    if find_pubsub_emulator().needs_fix():
        assert emulator.patched
        assert "io.grpc.InternalStatus fix" in log.splitlines()[0]


def test_fix_declares_the_missing_method() -> None:
    installation = find_pubsub_emulator()
    assert installation.jar is not None and installation.java is not None
    if not fixes.jar_has_fixed_internal_status(installation.jar):
        assert installation.needs_fix()  # a jar with the bug is always fixed
    fix_dir = fixes.compiled_fix(installation.jar, installation.java)
    assert fixes.compiled_fix(installation.jar, installation.java) == fix_dir  # cached
    methods = parse_class((fix_dir / "io/grpc/InternalStatus.class").read_bytes()).methods
    assert fixes.MISSING_METHOD in methods
    assert (
        b"asRuntimeExceptionWithoutStacktrace",
        b"(Lio/grpc/Status;Lio/grpc/Metadata;)Lio/grpc/StatusRuntimeException;",
    ) in methods
    command = installation.command(8085)
    assert command.patched
    assert command.argv[command.argv.index("-cp") + 1].startswith(f"{fix_dir}{os.pathsep}")
    assert command.argv[-2:] == ["--host=127.0.0.1", "--port=8085"]
    assert "-Xmx256m" in command.argv


def test_redelivery_fix_compiles_to_one_guarded_class() -> None:
    """The MessageBacklog$ExpireOutstandingMessagesRunnable fix compiles to that class alone
    (never the stub MessageBacklog it is compiled against), with the constructor the backlog
    calls and a catch-all, so the jar check would see it as needing no fix."""
    installation = find_pubsub_emulator()
    assert installation.jar is not None and installation.java is not None
    fix = fixes.REDELIVERY_FIX
    fix_dir = fixes.compiled_fix(installation.jar, installation.java, fix)
    assert fixes.compiled_fix(installation.jar, installation.java, fix) == fix_dir  # cached
    assert [p.relative_to(fix_dir) for p in fix_dir.rglob("*") if p.is_file()] == [fix.class_file]
    parsed = parse_class((fix_dir / fix.class_file).read_bytes())
    assert fixes.RUNNABLE_CONSTRUCTOR in parsed.methods
    assert (b"run", b"()V") in parsed.methods
    assert b"java/lang/Throwable" in parsed.classes
    if fix in installation.fixes_needed():
        command = installation.command(8085)
        classpath = command.argv[command.argv.index("-cp") + 1].split(os.pathsep)
        assert str(fix_dir) in classpath[:-1]
        assert classpath[-1] == str(installation.jar)
        assert fix.class_name in command.fixes
        assert f"{fix.class_name} fix" in command.description


def test_delayed_redelivery_survives_leases_expiring_together(tmp_path: Path) -> None:
    """On a subscription with a retry policy and a dead-letter policy (as ``bootstrap``
    creates), messages whose leases expire together on their 2nd delivery must come back, and
    reach the dead-letter topic after their last attempt.

    Unfixed 0.8.20 files each such ack id under several redelivery times (one per pull while it
    is expired), so its redelivery task nacks it twice, and the NullPointerException cancels
    that task for good, silently: the 3rd delivery still comes, but no delayed message comes
    back after it (here: the nacked 3rd delivery), and nothing is dead-lettered. The 1st
    delivery is nacked rather than expired (its expiry is not delayed), to keep the test short.
    """
    process = start_pubsub_emulator(free_port(), log_path=tmp_path / "emulator.log")
    try:
        _expire_together_then_dead_letter(process.host)
    finally:
        process.stop()
    header, _, output = process.log_path.read_text(errors="replace").partition("\n")
    assert "NullPointerException" not in output
    if fixes.REDELIVERY_FIX in find_pubsub_emulator().fixes_needed():
        assert "MessageBacklog$ExpireOutstandingMessagesRunnable fix" in header


def _expire_together_then_dead_letter(host: str) -> None:
    """The scenario of :func:`test_delayed_redelivery_survives_leases_expiring_together`
    against the emulator at ``host``; fails if the messages stop coming back."""
    settings = Settings(project_id=PROJECT, pubsub_emulator_host=host)
    publisher, subscriber = publisher_client(settings), subscriber_client(settings)
    suffix = uuid.uuid4().hex[:8]
    topic = publisher.topic_path(PROJECT, f"topic-{suffix}")
    dead_topic = publisher.topic_path(PROJECT, f"dead-{suffix}")
    subscription = subscriber.subscription_path(PROJECT, f"sub-{suffix}")
    dead_subscription = subscriber.subscription_path(PROJECT, f"dead-{suffix}")
    sent = {f"m{i}".encode() for i in range(5)}

    def pull(path: str) -> list[pubsub_v1.types.ReceivedMessage]:
        with warnings.catch_warnings():  # return_immediately: else the emulator waits it out
            warnings.filterwarnings("ignore", "The return_immediately flag", DeprecationWarning)
            response = subscriber.pull(
                subscription=path, max_messages=100, return_immediately=True, timeout=30
            )
        return list(response.received_messages)

    def pull_round(what: str, timeout: float) -> list[pubsub_v1.types.ReceivedMessage]:
        """Pull (every 0.1 s, as a busy worker would) until every message came; not acked."""
        got: dict[bytes, pubsub_v1.types.ReceivedMessage] = {}
        deadline = time.monotonic() + timeout
        while set(got) != sent and time.monotonic() < deadline:
            got.update((m.message.data, m) for m in pull(subscription))
            time.sleep(0.1)
        assert set(got) == sent, f"{what}: only {sorted(got)} came back within {timeout:g} s"
        return list(got.values())

    def nack(received: list[pubsub_v1.types.ReceivedMessage]) -> None:
        subscriber.modify_ack_deadline(
            subscription=subscription,
            ack_ids=[m.ack_id for m in received],
            ack_deadline_seconds=0,
        )

    try:
        publisher.create_topic(name=topic)
        publisher.create_topic(name=dead_topic)
        subscriber.create_subscription(name=dead_subscription, topic=dead_topic)
        subscriber.create_subscription(
            request={
                "name": subscription,
                "topic": topic,
                "ack_deadline_seconds": 10,  # the minimum
                "retry_policy": {
                    "minimum_backoff": timedelta(seconds=1),
                    "maximum_backoff": timedelta(seconds=1),
                },
                "dead_letter_policy": {
                    "dead_letter_topic": dead_topic,
                    "max_delivery_attempts": 5,  # the minimum
                },
            }
        )
        for data in sorted(sent):
            publisher.publish(topic, data).result(timeout=10)

        first = pull_round("1st delivery", 15)
        assert {m.delivery_attempt for m in first} == {1}
        nack(first)
        second = pull_round("2nd delivery", 15)
        assert {m.delivery_attempt for m in second} == {2}
        # Not acked: the five leases expire together 10 s later, while we keep pulling.
        third = pull_round("3rd delivery, after the leases expired", 25)
        assert {m.delivery_attempt for m in third} == {3}

        nack(third)  # and every later delivery, until the dead-letter policy takes them
        dead: set[bytes] = set()
        redelivered = 0
        deadline = time.monotonic() + 25
        while dead != sent and time.monotonic() < deadline:
            if again := pull(subscription):
                redelivered += len(again)
                nack(again)
            if arrived := pull(dead_subscription):
                subscriber.acknowledge(
                    subscription=dead_subscription, ack_ids=[m.ack_id for m in arrived]
                )
                dead.update(m.message.data for m in arrived)
            time.sleep(0.1)
        assert dead == sent, (
            f"after the nacked 3rd delivery: {redelivered} redeliveries, and only "
            f"{sorted(dead)} reached the dead-letter topic within 25 s"
        )
    finally:
        subscriber.close()
        publisher.stop()


def test_port_in_use(emulator: EmulatorProcess) -> None:
    port = int(emulator.host.rsplit(":", 1)[1])
    with pytest.raises(EmulatorAlreadyRunning, match="already running") as info:
        start_pubsub_emulator(port, timeout=5)
    assert info.value.host == emulator.host

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        with pytest.raises(EmulatorError, match="already in use") as other:
            start_pubsub_emulator(taken, timeout=5)
        assert not isinstance(other.value, EmulatorAlreadyRunning)
        assert not pubsub_emulator_ready(f"127.0.0.1:{taken}", timeout=0.5)


def test_detached_and_stop_detached(tmp_path: Path) -> None:
    port = free_port()
    process = start_pubsub_emulator(port, detach=True, log_path=tmp_path / "emulator.log")
    try:
        assert process.pid_file is not None
        assert process.pid_file.read_text().split()[0] == str(process.pid)
        assert os.getsid(process.pid) == process.pid  # a session of its own
        assert stop_detached_pubsub_emulator(port)
        assert not pubsub_emulator_ready(process.host)
        assert proc_cmdline(process.pid) is None
        assert not process.pid_file.exists()
        assert not stop_detached_pubsub_emulator(port)
    finally:
        process.stop()
    assert not _pid_alive(process.pid)


def test_jar_named_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = find_pubsub_emulator()
    assert installed.jar is not None and installed.java is not None
    java_home = Path(os.path.realpath(installed.java)).parents[1]
    monkeypatch.setenv("PUBSUB_JOBS_EMULATOR_JAR", str(installed.jar))
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    monkeypatch.setenv("PATH", "/nonexistent")  # the variable (and Java) alone are enough
    found = find_pubsub_emulator()
    assert found.jar == installed.jar
    assert found.java == str(java_home / "bin" / "java")
    assert found.found_via == "$PUBSUB_JOBS_EMULATOR_JAR"


def test_early_exit_reports_the_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLOUD_PUBSUB_EMULATOR_OPTS", "-XX:+NoSuchJvmOptionForPubsubJobs")
    with pytest.raises(EmulatorError, match="exited early") as info:
        start_pubsub_emulator(free_port(), log_path=tmp_path / "emulator.log", timeout=30)
    assert "NoSuchJvmOptionForPubsubJobs" in str(info.value)


def test_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(EmulatorError, match="did not answer") as info:
        start_pubsub_emulator(port, log_path=tmp_path / "emulator.log", timeout=0.2)
    assert "Last lines of" in str(info.value)
    time.sleep(0.5)
    assert not pubsub_emulator_ready(f"127.0.0.1:{port}", timeout=0.5)
    leftovers = [
        cmdline
        for proc in Path("/proc").glob("[0-9]*")
        if (cmdline := proc_cmdline(int(proc.name))) and f"--port={port}" in cmdline
    ]
    assert leftovers == []


ROOT = Path(__file__).resolve().parents[2]


def _command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``pubsub-jobs emulator ARGS``, as the user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "pubsub_jobs", "emulator", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def _command_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PUBSUB_JOBS_") and k != "GOOGLE_CLOUD_PROJECT"}
    return {**env, "PYTHONPATH": str(ROOT), **settings}


def test_the_command_starts_detached_emulators_from_the_settings_and_stops_them() -> None:
    port, tasks_port = free_port(), free_port()
    ports = ["--port", str(port), "--tasks-port", str(tasks_port)]
    env = _command_env(GOOGLE_CLOUD_PROJECT="demo-project", PUBSUB_JOBS_CLOUD_TASKS_QUEUE="later")
    try:
        started = _command("start", *ports, env=env)
        assert started.returncode == 0, started.stderr
        assert started.stdout.splitlines() == [
            f"export PUBSUB_EMULATOR_HOST=127.0.0.1:{port}",
            f"export CLOUD_TASKS_EMULATOR_HOST=127.0.0.1:{tasks_port}",
            "export PUBSUB_JOBS_CLOUD_TASKS_LOCATION=us-central1",
        ]
        assert "queue projects/demo-project/locations/us-central1/queues/later" in started.stderr
        assert pubsub_emulator_ready(f"127.0.0.1:{port}")
        pid = int(pid_file(port).read_text().split()[0])
        stopped = _command("stop", *ports, env=env)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.splitlines() == ["stopped", "stopped the Cloud Tasks emulator"]
        assert proc_cmdline(pid) is None
        assert not pid_file(port).exists()
        again = _command("stop", *ports, env=env)
        assert f"no emulator of ours is running on port {port}" in again.stdout
    finally:
        stop_detached_tasks_emulator(tasks_port)
        stop_detached_pubsub_emulator(port)


def test_the_command_in_the_foreground_stops_its_emulator_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pubsub_jobs", "emulator", "start", "--foreground",
         "--no-cloud-tasks", "--port", str(port)],
        env=_command_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"export PUBSUB_EMULATOR_HOST=127.0.0.1:{port}\n"
        assert pubsub_emulator_ready(f"127.0.0.1:{port}")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "SIGTERM: stopping the emulators" in stderr
    pid = int(stderr.split("(pid ", 1)[1].split(",", 1)[0])
    assert proc_cmdline(pid) is None
    assert not pubsub_emulator_ready(f"127.0.0.1:{port}", timeout=0.5)
