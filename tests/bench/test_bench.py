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
from typing import Any

import pytest

from pubsub_jobs._codec import ArgumentCodec
from pubsub_jobs.errors import InvalidArguments
from pubsub_jobs.message import JobMessage, new_job_id

ROOT = Path(__file__).resolve().parents[2]

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
HEADLINE_SYSTEMS = {"raw", "ours", "dramatiq", "celery"}
HEADLINE_METRICS = {"drain", "enqueue", "first_s", "cpu_us", "rss_mib"}


@pytest.mark.emulator
@pytest.mark.timeout(900)  # the first run installs the peers' virtualenvs from PyPI
def test_quick_run_reports_every_figure(pubsub_emulator: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--reps", "1",
         "--emulator-host", pubsub_emulator, "--out", str(tmp_path), "--start-n", "5",
         "--latency-n", "5", "--drain-n", "50", "--rss-n", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=880,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    results = json.loads((tmp_path / "latest.json").read_text())
    table = (tmp_path / "latest.md").read_text()
    assert table == result.stdout

    # the headline: every system at one stream, raw and ours at K streams; a peer that could
    # not be installed or run is in the table with the reason, never dropped
    rows = {row["case"]: row for row in results["headline"]["rows"]}
    assert set(rows) == {f"{s}/k1" for s in HEADLINE_SYSTEMS} | {"raw/k4", "ours/k4"}
    for case in ("raw/k1", "ours/k1", "raw/k4", "ours/k4"):
        assert rows[case]["status"] == "ok", rows[case]
    for row in rows.values():
        assert row["title"] in table
        if row["status"] == "ok":
            assert set(row["median"]) >= HEADLINE_METRICS
            assert all(row["median"][m] > 0 for m in HEADLINE_METRICS)
            assert row["median"]["duplicates"] == 0
        else:
            assert row["status"] in table or "failed" in table
    for target in results["headline"]["targets"]:
        assert target["title"] in table
        assert target["ratio"] is not None or target["why_not"]

    figures = {f["key"]: f for f in results["figures"]}
    assert set(figures) == FIGURES
    for figure in figures.values():
        for side in ("raw", "pubsub_jobs"):
            summary = figure[side]
            assert len(summary["runs"]) >= 1
            assert all(value > 0 for value in summary["runs"])
            assert summary["min"] <= summary["median"]
            assert summary["setup"]
        assert figure["ratio"] > 0
        assert figure["title"] in table
    for key in ("bulk_publish", "single_publish", "drain_k1", "drain_k4"):
        assert figures[key]["target"] is not None
        assert isinstance(figures[key]["meets_target"], bool)

    prefetch = results["prefetch"]["rows"]
    assert [row["prefetch"] for row in prefetch] == [0, 40]
    for row in prefetch:
        assert row["drain"] > 0 and 0.5 <= row["spread"] <= 1 and 0 <= row["late"] <= 1
    eo = results["exactly_once"]
    assert eo["plain"]["drain"] > 0 and eo["exactly_once"]["drain"] > 0 and eo["ratio"] > 0
    assert eo["exactly_once"]["acks_confirmed"] > 0 and eo["plain"]["acks_confirmed"] == 0
    assert "### Exactly-once queue" in table
    assert results["machine"]["cores"] >= 1 and results["machine"]["python"]
    assert results["load_average"]["before"]


def test_a_peer_that_cannot_be_installed_is_in_the_table_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench._common import QUICK
    from bench.headline import _cases, summarize
    from bench.peers import System, prepare
    from bench.report import headline

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    requirements = tmp_path / "broken.txt"
    requirements.write_text("this is not a requirement ===\n")  # pip refuses it offline
    reason = prepare(System("broken", "broken", "", requirements), timeout=120)
    assert isinstance(reason, str) and "could not install broken.txt" in reason

    measured = {"drain": 100.0, "enqueue": 1000.0, "first_s": 1.0, "cpu_us": 200.0,
                "rss_mib": 60.0, "duplicates": 0}
    cases = _cases(QUICK)
    pythons: dict[str, Path | str] = {"raw": Path(sys.executable), "ours": Path(sys.executable),
                                      "dramatiq": reason, "celery": Path(sys.executable)}
    runs = {f"{s.key}/k{k}": [measured] for s, k, _ in cases if s.key not in
            ("dramatiq", "celery")}
    summary = summarize(QUICK, cases, pythons, runs, {"celery/k1": ["TimeoutError: slow"]})
    text = "\n".join(headline(summary))
    assert f"not measured: {reason}" in text
    assert "failed: TimeoutError: slow" in text
    by_key = {t["key"]: t for t in summary["targets"]}
    assert by_key["drain_vs_raw"]["met"] is True
    assert by_key["drain_vs_dramatiq"]["met"] is None
    assert "could not install" in by_key["drain_vs_dramatiq"]["why_not"]
    assert by_key["drain_vs_celery"]["why_not"] == "celery: failed"


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
    # a positional-only parameter passed by keyword is refused (named as an unknown keyword)
    with pytest.raises(InvalidArguments, match="positional only|unexpected keyword argument 'a'"):
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


def test_decode_by_type_tuple_agrees_with_the_full_conversion() -> None:
    # The worker decodes a call whose argument types are all passed through with one set
    # lookup; every shape must give what pydantic's conversion gives, or be left to it.
    def plain(s: str, i: int, flag: bool, anything) -> None: ...  # type: ignore[no-untyped-def]

    def optional(s: str, f: float = 0.5) -> None: ...

    def keyword(s: str, *, n: int) -> None: ...

    def wide(a, b, c, d) -> None: ...  # type: ignore[no-untyped-def]

    calls: list[tuple[Any, list[Any], dict[str, Any]]] = [
        (plain, ["s", 1, True, None], {}),
        (plain, ["s", 1, True, "x"], {}),
        (plain, ["s", True, 1, 1.5], {}),          # bool for int, int for bool: converted
        (plain, ["s", 1, True, float("inf")], {}),  # a float is checked, never a set member
        (plain, ["s", 1], {}),                      # missing arguments: refused
        (plain, ["s", 1, True, None, 5], {}),       # one too many: refused
        (optional, ["s"], {}),
        (optional, ["s", 2], {}),
        (optional, ["s", 2.5], {}),
        (keyword, ["s"], {"n": 1}),
        (keyword, ["s"], {}),                       # a required keyword-only one missing
        (wide, [1, "a", None, True], {}),           # 4 x Any: too many tuples for the set
    ]
    for fn, args, kwargs in calls:
        codec = _codec_of(fn)
        try:
            expected: object = codec._checked(args, kwargs, codec._decode_one)
        except Exception as exc:  # the full conversion's refusal, compared by type
            expected = type(exc)
        for _ in range(2):  # the first call resolves the hints and builds the set
            try:
                got: object = codec.decode(args, kwargs)
            except Exception as exc:
                got = type(exc)
            assert got == expected, (fn.__name__, args, kwargs)
    codecs = {fn: _codec_of(fn) for fn in (plain, optional, keyword, wide)}
    for codec in codecs.values():
        codec.adapters  # noqa: B018 - resolves the hints, and builds the set
    assert (str, int, bool, type(None)) in codecs[plain]._unchanged_types
    assert (str, int, bool, float) not in codecs[plain]._unchanged_types
    assert codecs[optional]._unchanged_types == frozenset()  # float: checked by the loop
    assert codecs[keyword]._unchanged_types == frozenset()  # a required keyword-only one
    assert codecs[wide]._unchanged_types == frozenset()  # 256 tuples: left to the loop
