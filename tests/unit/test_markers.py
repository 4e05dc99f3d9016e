"""The suite's own rule (tests/conftest.py): a test that uses an emulator fixture carries the
``emulator`` marker, and no test under unit/ uses one; otherwise the run fails, naming the
test. Checked on a small suite of its own, run in this process by pytester."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
from pathlib import Path

import pytest

from tests.conftest import mark_and_check


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    mark_and_check(items, Path(__file__).parent)
"""


INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider
markers =
    emulator
    terraform
    docs
    bench
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    for folder in ("unit", "emulator", "docs"):
        pytester.mkpydir(folder)
    return pytester


def test_an_emulator_fixture_without_the_marker_fails_the_run(suite: pytest.Pytester) -> None:
    suite.path.joinpath("docs", "test_unmarked.py").write_text(
        "def test_needs_queues(bootstrap_queues):\n    pass\n"
    )
    result = suite.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "ERROR: docs/test_unmarked.py::test_needs_queues uses the fixture pubsub_emulator "
        "without the emulator marker: add @pytest.mark.emulator (or move it under emulator/).",
    ])


def test_a_unit_test_may_not_use_an_emulator_even_marked(suite: pytest.Pytester) -> None:
    suite.path.joinpath("unit", "test_marked.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.emulator\n"
        "def test_both(pubsub_emulator, cloud_tasks_emulator):\n    pass\n"
    )
    result = suite.runpytest("--collect-only", "-m", "not emulator")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "ERROR: unit/test_marked.py::test_both uses the fixtures pubsub_emulator and "
        "cloud_tasks_emulator, but tests under unit/ need no emulator: *",
    ])


def test_marked_or_in_the_emulator_folder_is_fine(suite: pytest.Pytester) -> None:
    suite.path.joinpath("emulator", "test_folder.py").write_text(
        "def test_by_folder(pubsub_jobs_settings):\n    pass\n"
    )
    suite.path.joinpath("docs", "test_marked.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.emulator\n"
        "def test_by_marker(pubsub_emulator):\n    pass\n\n"
        "def test_in_memory(memory_adapter):\n    pass\n"
    )
    suite.path.joinpath("unit", "test_pure.py").write_text(
        "def test_pure(memory_adapter):\n    pass\n"
    )
    result = suite.runpytest("--collect-only", "-q", "-m", "emulator")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([
        "docs/test_marked.py::test_by_marker",
        "emulator/test_folder.py::test_by_folder",
        "2/4 tests collected (2 deselected)*",
    ])
    for selection, count in (("docs", "2/4"), ("not emulator and not docs", "1/4")):
        result = suite.runpytest("--collect-only", "-q", "-m", selection)
        assert result.ret == pytest.ExitCode.OK
        result.stdout.fnmatch_lines([f"{count} tests collected*"])
