"""``pubsub-jobs cron list`` and ``pubsub-jobs terraform-vars --module`` as commands, on a
module of periodic jobs (no emulator needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


USER_MODULE = """
from pubsub_jobs import job, schedule

@job(cron="30 2 * * *", timezone="Europe/Berlin")
def nightly() -> None: ...

@job(queue="reports")
def report(kind: str) -> None: ...

schedule(report, "0 9 * * MON", name="weekly-sales", args=["sales"])
"""


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "periodic.py").write_text(textwrap.dedent(USER_MODULE))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PUBSUB_JOBS_PROJECT_ID": "p"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run([sys.executable, "-m", "pubsub_jobs", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cron_list(tmp_path):
    result = run_cli(tmp_path, "cron", "list", "periodic", "--count", "2")
    assert result.returncode == 0, result.stderr
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["SCHEDULE", "JOB", "QUEUE", "CRON", "TIME", "ZONE", "NEXT", "RUNS"]
    assert first.split()[:8] == ["periodic.nightly", "periodic.nightly", "default", "30", "2",
                                 "*", "*", "*"]
    assert "Europe/Berlin" in first and ("CET" in first or "CEST" in first)
    assert second.split()[:3] == ["weekly-sales", "periodic.report", "reports"]
    as_json = json.loads(run_cli(tmp_path, "cron", "list", "periodic", "--json").stdout)
    assert [row["name"] for row in as_json] == ["periodic.nightly", "weekly-sales"]
    assert as_json[1]["args"] == ["sales"] and len(as_json[1]["next_runs"]) == 3


def test_terraform_vars_with_modules_writes_the_schedules(tmp_path):
    result = run_cli(tmp_path, "terraform-vars", "periodic", "--queue", "default", "--queue",
                     "reports", "--output", "-")
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    assert written["schedules"]["weekly-sales"]["cron"] == "0 9 * * MON"
    assert written["schedules"]["periodic.nightly"]["time_zone"] == "Europe/Berlin"
    without = run_cli(tmp_path, "terraform-vars", "--queue", "default", "--output", "-")
    assert "schedules" not in json.loads(without.stdout)
    missing = run_cli(tmp_path, "terraform-vars", "periodic", "--queue", "default")
    assert missing.returncode == 2 and "add --queue reports" in missing.stderr
