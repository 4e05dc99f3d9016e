"""The benchmark harness runs end to end on tiny sizes and reports every figure; the shortcuts
taken for speed keep the behaviour of the slow paths.

It checks that the harness works, never how fast anything is: timings are for
``python -m bench.run`` to report, not for tests to assert.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pubsub_jobs._codec import ArgumentCodec
from pubsub_jobs.errors import InvalidArguments
from pubsub_jobs.message import JobMessage, new_job_id

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


@pytest.mark.emulator
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


# The shortcuts taken for speed (bench/README) keep the behaviour of the slow paths.


def _codec_of(fn: object) -> ArgumentCodec:
    return ArgumentCodec(fn, "f")  # type: ignore[arg-type]


def test_fast_binding_encodes_as_signature_bind_would() -> None:
    def f(a: int, b: int = 1, c: str = "x") -> None: ...

    codec = _codec_of(f)
    assert codec.encode((1, 2), {}) == ([1, 2], {})
    assert codec.encode((), {"b": 2, "a": 1}) == ([1, 2], {})
    # an argument left out ends the positional ones: c must not land in b's place
    assert codec.encode((1,), {"c": "y"}) == ([1], {"c": "y"})
    assert codec.decode([1], {"c": "y"}) == ([1], {"c": "y"})
    for args, kwargs, match in [
        ((1, 2, "x", 4), {}, "too many positional arguments"),
        ((1,), {"a": 1}, "multiple values for argument 'a'"),
        ((), {}, "missing a required argument: 'a'"),
        ((1,), {"d": 1}, "unexpected keyword argument 'd'"),
        (("one",), {}, "argument 'a' is invalid"),
    ]:
        with pytest.raises(InvalidArguments, match=match):
            codec.encode(args, kwargs)


def test_fast_binding_leaves_special_signatures_to_signature_bind() -> None:
    def g(a: int, /, b: int = 1, *, c: int = 2) -> None: ...

    def h(a: int, *rest: int, b: int = 1, **more: int) -> None: ...

    assert _codec_of(g).encode((1,), {"c": 3}) == ([1], {"c": 3})
    with pytest.raises(InvalidArguments, match="positional only"):
        _codec_of(g).encode((), {"a": 1})
    assert _codec_of(h).encode((1, 2, 3), {"b": 4, "z": 5}) == ([1, 2, 3], {"b": 4, "z": 5})


def test_values_passed_through_unchanged_are_what_pydantic_returns() -> None:
    def k(s: str, i: int, f: float, flag: bool, anything, when: datetime) -> None: ...  # type: ignore[no-untyped-def]  # noqa: E501

    codec = _codec_of(k)
    when = datetime(2026, 1, 2, tzinfo=UTC)
    assert codec.encode(("s", 1, 1.5, True, None, when), {}) == (
        ["s", 1, 1.5, True, None, "2026-01-02T00:00:00Z"], {})
    # not of the hinted type exactly: pydantic converts as before
    assert codec.encode(("s", True, 2, 1, 0.5, when), {})[0][1:5] == [1, 2.0, True, 0.5]
    # not JSON as it is (NaN, Infinity): refused, never written as null or as a non-JSON token
    with pytest.raises(InvalidArguments, match="NaN or Infinity"):
        codec.encode(("s", 1, 1.5, True, float("inf"), when), {})
    assert codec.decode(["s", 1, 2, 1, 3, "2026-01-02T00:00:00Z"], {})[0][2:4] == [2.0, True]


def test_job_ids_are_uuid4_and_data_is_compact_json() -> None:
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    for job_id in ids:
        parsed = uuid.UUID(job_id)
        assert (str(parsed), parsed.version, parsed.variant) == (job_id, 4, uuid.RFC_4122)
    args: list[object] = ["é", 1, 2.5, None, True, {"k": [1e22, -0.0]}]
    kwargs: dict[str, object] = {"x": "\u2028"}
    body = {"args": args, "kwargs": kwargs}
    message = JobMessage(job_name="j", queue="q", args=args, kwargs=kwargs)
    assert message.encode_data() == json.dumps(
        body, separators=(",", ":"), ensure_ascii=False).encode()
