"""Settings through the command line: an invalid variable is one line and exit code 2, and
the log level and format come from the settings unless the command line says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PUBSUB_JOBS = str(Path(sys.executable).with_name("pubsub-jobs"))


def run_cli(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PUBSUB_JOBS_")}
    return subprocess.run(  # noqa: S603
        [PUBSUB_JOBS, *argv], env={**environ, **env}, capture_output=True, text=True,
        timeout=60,
    )


# ------------------------------------------------------------------ through the command line


def test_cli_reports_an_invalid_variable_in_one_line_and_exits_2() -> None:
    result = run_cli("bootstrap", "--queue", "q", PUBSUB_JOBS_PUBLISH_TIMEOUT="abc")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("pubsub-jobs: invalid pubsub-jobs setting: ")
    assert "PUBSUB_JOBS_PUBLISH_TIMEOUT='abc'" in line and "valid number" in line


def test_cli_reports_an_invalid_log_level_variable() -> None:
    result = run_cli("bootstrap", "--queue", "q", PUBSUB_JOBS_LOG_LEVEL="loud")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "PUBSUB_JOBS_LOG_LEVEL='loud'" in result.stderr


def test_bootstrap_without_queues_says_which_to_give() -> None:
    """No --queue and no module declaring queues: one sentence, exit 2, nothing created."""
    result = run_cli("bootstrap", PUBSUB_JOBS_PROJECT_ID="p")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert ("bootstrap: say which queues: --queue Q (repeatable), or declare them with "
            "queue(...) in a module given with --app") in result.stderr


_SHOW_LOGGING = (
    "import logging, sys\n"
    "from pubsub_jobs.cli import main\n"
    "code = main(sys.argv[1:] + ['terraform-vars', '--queue', 'q', '--output', '-'])\n"
    "root = logging.getLogger()\n"
    "print(code, logging.getLevelName(root.level), type(root.handlers[0].formatter).__name__,"
    " file=sys.stderr)\n"
)


@pytest.mark.parametrize(
    ("argv", "env", "shown"),
    [
        ([], {}, "0 INFO TextFormatter"),
        ([], {"PUBSUB_JOBS_LOG_LEVEL": "warning", "PUBSUB_JOBS_LOG_FORMAT": "json"},
         "0 WARNING JsonFormatter"),
        (["--log-level", "debug", "--log-format", "text"],
         {"PUBSUB_JOBS_LOG_LEVEL": "WARNING", "PUBSUB_JOBS_LOG_FORMAT": "json"},
         "0 DEBUG TextFormatter"),
    ],
)
def test_cli_log_defaults_come_from_the_settings_and_the_command_line_wins(
    argv: list[str], env: dict[str, str], shown: str
) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PUBSUB_JOBS_")}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _SHOW_LOGGING, *argv],
        env={**environ, "PUBSUB_JOBS_PROJECT_ID": "p", **env},
        capture_output=True, text=True, timeout=60,
    )
    assert result.stderr.strip().splitlines()[-1] == shown, result.stderr
