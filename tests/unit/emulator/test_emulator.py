"""Finding the emulators without starting one: a missing jar named by the environment, no
emulator on the path, a non-loopback host refused, the class-file reader's errors, and the
Cloud Tasks server's imports (starting and stopping them: tests/emulator/test_emulator.py)."""

from __future__ import annotations

import ast
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


def test_the_tasks_server_imports_nothing_of_pubsub_jobs() -> None:
    """It runs in the Cloud Tasks emulator's virtualenv, which lacks pubsub-jobs."""
    from pubsub_jobs.emulator.cloud_tasks import SERVER

    names = []
    for node in ast.walk(ast.parse(SERVER.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            names += [arg.value for arg in node.args if isinstance(arg, ast.Constant)]
    assert "gcloud_tasks_emulator.server" in names
    assert [n for n in names if n.split(".")[0] == "pubsub_jobs"] == []


