"""The ordered-jobs benchmark runs end to end on a tiny size and reports the ratio and the
one-key concurrency (timings are for ``python -m bench.ordered`` to report, never for tests
to assert; one job at a time per key is what the feature promises, so it is checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.emulator


def test_the_ordered_benchmark_reports_the_ratio_and_one_job_at_a_time_for_one_key(
    pubsub_emulator: str, tmp_path: Path,
) -> None:
    out = tmp_path / "ordered.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.ordered", "--n", "60", "--keys", "10", "--one-key-n", "20",
         "--reps", "2", "--emulator-host", pubsub_emulator, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=170,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert len(figures["ordered"]) == len(figures["unordered"]) == len(figures["one_key"]) == 2
    assert all(value > 0 for value in figures["ordered"] + figures["unordered"])
    assert figures["one_key_most_at_once"] == [1, 1]
    assert "ratio ordered/unordered:" in result.stdout
