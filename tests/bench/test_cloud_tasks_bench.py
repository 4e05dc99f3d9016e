"""``bench.unique`` and ``bench.rate`` run end to end on tiny sizes and report every figure
(never how fast anything was: that is for the benchmarks to report)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(module: str, pubsub_emulator: str, *argv: str) -> None:
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": pubsub_emulator}
    env.pop("CLOUD_TASKS_EMULATOR_HOST", None)
    result = subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.emulator
def test_the_enqueue_benchmark_reports_every_way(pubsub_emulator: str, tmp_path: Path) -> None:
    out = tmp_path / "unique.json"
    _run("bench.unique", pubsub_emulator, "--count", "150", "--reps", "1", "--out", str(out))
    result = json.loads(out.read_text())
    ways = {"unique batch", "delayed batch", "delayed, concurrent CreateTask",
            "delayed, one CreateTask after another"}
    assert set(result["median_jobs_per_second"]) == ways
    assert all(v > 0 for v in result["median_jobs_per_second"].values())
    assert result["ratio_to_one_by_one"]["delayed, one CreateTask after another"] == 1.0


@pytest.mark.emulator
def test_the_rate_benchmark_counts_every_second(pubsub_emulator: str, tmp_path: Path) -> None:
    out = tmp_path / "rate.json"
    _run("bench.rate", pubsub_emulator, "--seconds", "3", "--out", str(out))
    result = json.loads(out.read_text())
    assert result["cloud_tasks_queue_rate"] == 50 and result["workers"] == 4
    assert len(result["per_second"]) == 3 and sum(result["per_second"]) > 0
    assert result["delivered_in_window"] == sum(result["per_second"])
    assert sum(result["jobs_run_by_each_worker"]) >= result["delivered_in_window"]
