"""The push benchmark runs end to end on a tiny size and reports both figures and their
ratio (timings are for ``python -m bench.push`` to report, never for tests to assert)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.emulator


def test_the_push_benchmark_reports_push_beside_pull(pubsub_emulator: str, tmp_path: Path):
    out = tmp_path / "push.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.push", "--n", "30", "--reps", "2",
         "--emulator-host", pubsub_emulator, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert len(figures["pull"]) == len(figures["push"]) == len(figures["push_floor"]) == 2
    assert all(value > 0 for value in figures["pull"] + figures["push"] + figures["push_floor"])
    assert figures["ratio"] > 0
    assert "ratio push/pull:" in result.stdout
