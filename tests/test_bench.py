"""The benchmark harness runs end to end on tiny sizes and reports every figure.

It checks that the harness works, never how fast anything is: timings are for
``python -m bench.run`` to report, not for tests to assert.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.emulator

ROOT = Path(__file__).resolve().parent.parent

FIGURES = {
    "bulk_publish",
    "single_publish",
    "single_publish_floor",
    "bulk_publish_floor",
    "drain_cpu_k1",
    "drain_cpu_k4",
    "drain_k1",
    "drain_k4",
    "start_p50",
    "start_p99",
    "rss_idle",
    "rss_after",
}


def test_quick_run_reports_every_figure(pubsub_emulator: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--emulator-host", pubsub_emulator,
         "--out", str(tmp_path), "--start-n", "5", "--latency-n", "5", "--drain-n", "50",
         "--rss-n", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    results = json.loads((tmp_path / "latest.json").read_text())
    figures = {f["key"]: f for f in results["figures"]}
    assert set(figures) == FIGURES
    for figure in figures.values():
        for side in ("raw", "pubsub_jobs"):
            summary = figure[side]
            assert len(summary["runs"]) >= 3
            assert all(value > 0 for value in summary["runs"])
            assert summary["min"] <= summary["median"]
            assert summary["setup"]
        assert figure["ratio"] > 0
    for key in ("bulk_publish", "single_publish", "drain_k1", "drain_k4"):
        assert figures[key]["target"] is not None
        assert isinstance(figures[key]["meets_target"], bool)
    assert results["machine"]["cores"] >= 1 and results["machine"]["python"]

    table = (tmp_path / "latest.md").read_text()
    assert table == result.stdout
    for figure in figures.values():
        assert figure["title"] in table
