"""Tests of pubsub_jobs._emulator: finding, starting and stopping the Pub/Sub emulator, and
the fix for emulator 0.8.20, which loses messages of cancelled streaming pulls."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pubsub_jobs import _emulator
from pubsub_jobs._emulator import (
    EmulatorAlreadyRunning,
    EmulatorError,
    EmulatorProcess,
    find_pubsub_emulator,
    free_port,
    pubsub_emulator_ready,
    start_pubsub_emulator,
    stop_detached,
)

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


@pytest.mark.emulator
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


@pytest.mark.emulator
def test_cancelled_streaming_pull_does_not_lose_messages(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publish m1, receive it on a streaming pull, cancel the stream (as every worker stop
    does), publish m2: m2 must be delivered. Unfixed 0.8.20 never delivers it."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
    from google.cloud import pubsub_v1

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


@pytest.mark.emulator
def test_fix_declares_the_missing_method() -> None:
    installation = find_pubsub_emulator()
    if not installation.needs_fix():
        pytest.skip(f"{installation.jar} needs no fix")
    assert installation.jar is not None and installation.java is not None
    fix_dir = _emulator._compiled_fix(installation.jar, installation.java)
    assert _emulator._compiled_fix(installation.jar, installation.java) == fix_dir  # cached
    methods = _emulator._class_methods((fix_dir / "io/grpc/InternalStatus.class").read_bytes())
    assert _emulator._MISSING_METHOD in methods
    assert (
        b"asRuntimeExceptionWithoutStacktrace",
        b"(Lio/grpc/Status;Lio/grpc/Metadata;)Lio/grpc/StatusRuntimeException;",
    ) in methods
    command = installation.command(8085)
    assert command.patched
    assert command.argv[command.argv.index("-cp") + 1].startswith(f"{fix_dir}{os.pathsep}")
    assert command.argv[-2:] == ["--host=127.0.0.1", "--port=8085"]
    assert "-Xmx256m" in command.argv


def test_missing_jar_named_by_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PUBSUB_JOBS_EMULATOR_JAR", str(tmp_path / "missing.jar"))
    with pytest.raises(EmulatorError) as info:
        find_pubsub_emulator()
    message = str(info.value)
    assert "missing.jar" in message
    assert "gcloud components install pubsub-emulator beta" in message
    assert "apt-get install google-cloud-cli-pubsub-emulator" in message
    assert "Java 11" in message


def test_no_emulator_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PUBSUB_JOBS_EMULATOR_JAR", raising=False)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmulatorError) as info:
        start_pubsub_emulator(free_port(), timeout=5)
    message = str(info.value)
    assert "gcloud components install pubsub-emulator beta" in message
    assert "apt-get install google-cloud-cli-pubsub-emulator" in message
    assert "Java 11" in message


@pytest.mark.emulator
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


def test_refuses_non_loopback_host() -> None:
    with pytest.raises(EmulatorError, match="loopback"):
        start_pubsub_emulator(free_port(), host="0.0.0.0", timeout=5)  # noqa: S104


@pytest.mark.emulator
def test_detached_and_stop_detached(tmp_path: Path) -> None:
    port = free_port()
    process = start_pubsub_emulator(port, detach=True, log_path=tmp_path / "emulator.log")
    try:
        assert process.pid_file is not None
        assert process.pid_file.read_text().split()[0] == str(process.pid)
        assert os.getsid(process.pid) == process.pid  # a session of its own
        assert stop_detached(port)
        assert not pubsub_emulator_ready(process.host)
        assert _emulator._proc_cmdline(process.pid) is None
        assert not process.pid_file.exists()
        assert not stop_detached(port)
    finally:
        process.stop()
    assert not _pid_alive(process.pid)


def test_stop_detached_never_kills_a_stranger() -> None:
    port = free_port()
    pid_file = _emulator._pid_file(port)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file.write_text(f"{stranger.pid}\n")
        assert not stop_detached(port)
        time.sleep(0.2)
        assert stranger.poll() is None
        assert not pid_file.exists()  # stale pid file removed
    finally:
        stranger.kill()
        stranger.wait()
        pid_file.unlink(missing_ok=True)


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


@pytest.mark.emulator
def test_early_exit_reports_the_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLOUD_PUBSUB_EMULATOR_OPTS", "-XX:+NoSuchJvmOptionForPubsubJobs")
    with pytest.raises(EmulatorError, match="exited early") as info:
        start_pubsub_emulator(free_port(), log_path=tmp_path / "emulator.log", timeout=30)
    assert "NoSuchJvmOptionForPubsubJobs" in str(info.value)


@pytest.mark.emulator
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
        if (cmdline := _emulator._proc_cmdline(int(proc.name))) and f"--port={port}" in cmdline
    ]
    assert leftovers == []
