"""Finding the emulators without starting one: a missing jar named by the environment, no
emulator on the path, a non-loopback host refused, the class-file reader's errors (starting
and stopping them: tests/emulator/test_emulator.py; the Cloud Tasks emulator's logic:
tests/unit/emulator/tasks/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pubsub_jobs.emulator import (
    find_pubsub_emulator,
    free_port,
    start_pubsub_emulator,
)
from pubsub_jobs.emulator.classfile import parse_class
from pubsub_jobs.errors import EmulatorError


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


def test_refuses_non_loopback_host() -> None:
    with pytest.raises(EmulatorError, match="loopback"):
        start_pubsub_emulator(free_port(), host="0.0.0.0", timeout=5)  # noqa: S104


def test_a_malformed_class_file_is_an_emulator_error() -> None:
    """The class-file reader's own errors (struct, index, value) never reach callers."""
    header = b"\xca\xfe\xba\xbe\x00\x00\x00\x34"
    with pytest.raises(EmulatorError, match="Cannot parse Bad.class"):
        parse_class(header + b"\x00\x02\x63", "Bad.class")  # constant pool tag 99
    with pytest.raises(EmulatorError, match="Cannot parse class file"):
        parse_class(header + b"\x00")  # truncated
