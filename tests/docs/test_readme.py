"""The documentation's Python examples run: each ```python block is marked with how to run it.

The pages of ``docs/`` are read in the order of ``mkdocs.yml``'s nav (README.md is built from
the first two, and checked to be up to date). ``module PATH`` blocks become a module of a
scratch project (``myapp/jobs.py``), ``exec`` blocks run in order against the emulator with
the queues bootstrapped, ``pytest`` blocks run as a user's test file with the plugin. An
unmarked block fails this test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import pubsub_jobs

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKED = re.compile(r"<!-- readme-test: (\w+) ?([^>]*?) ?-->\s*```python\n(.*?)```", re.S)
QUEUES = ("default", "mailers", "urgent", "reports")


def doc_pages() -> list[Path]:
    """The documentation's pages, in the nav's order (the nav names each once)."""
    nav = re.findall(r"^\s*- (?:[^:\n]+: )?([\w-]+\.md)\s*$",
                     (ROOT / "mkdocs.yml").read_text(), re.M)
    pages = [ROOT / "docs" / name for name in nav]
    on_disk = sorted((ROOT / "docs").glob("*.md"))
    assert sorted(pages) == on_disk, "every page of docs/ is in mkdocs.yml's nav, once"
    return pages


def readme_blocks() -> list[tuple[str, str, str]]:
    blocks = []
    for page in doc_pages():
        text = page.read_text()
        found = MARKED.findall(text)
        assert len(found) == text.count("```python\n"), f"{page.name}: a python block " \
            "needs a marker"
        blocks += found
    return blocks


@pytest.mark.emulator
def test_readme_examples_run(pubsub_jobs_settings, bootstrap_queues, pytester, monkeypatch):
    bootstrap_queues(*QUEUES)
    project = pytester.path
    monkeypatch.syspath_prepend(str(project))
    blocks = readme_blocks()
    for kind, arg, code in blocks:
        if kind == "module":
            path = project / arg.strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            for parent in path.relative_to(project).parents:
                (project / parent / "__init__.py").touch()
            path.write_text(code)
    ran = 0
    for kind, _, code in blocks:
        if kind == "exec":
            namespace: dict[str, object] = {"__name__": "readme_example"}
            exec(compile(code, str(README), "exec"), namespace)  # noqa: S102
            pubsub_jobs.configure(**pubsub_jobs_settings.model_dump())
            ran += 1
        elif kind == "pytest":
            test_file = project / f"test_readme_{ran}.py"
            test_file.write_text(code)
            paths = [str(project), os.environ.get("PYTHONPATH", "")]
            monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
            result = pytester.runpytest_subprocess(str(test_file), "-p", "no:cacheprovider")
            outcomes = result.parseoutcomes()
            passed, failed = outcomes.get("passed", 0), outcomes.get("failed", 0)
            assert passed >= 1 and not failed, result.stdout.str()
            ran += 1
    assert ran >= 3


def test_readme_is_built_from_the_docs():
    import importlib.util

    path = README.parent / "docs" / "build_readme.py"
    spec = importlib.util.spec_from_file_location("build_readme", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert README.read_text() == module.build(), "run: python docs/build_readme.py"


def test_the_readme_shows_the_headline_of_the_committed_benchmark_run():
    """The README's "Benchmarks" table (and the benchmarks page's) is the one
    ``bench/results/latest.json`` gives (the run that wrote ``latest.md``): ``python -m
    bench.run`` rewrites it after each run."""
    import json

    from bench.report import DOCS_BLOCK, docs_block, replace_docs_block
    from bench.run import DOCS_PAGES

    results = json.loads((ROOT / "bench" / "results" / "latest.json").read_text())
    block = docs_block(results)
    for name in DOCS_PAGES:
        assert block in (ROOT / "docs" / name).read_text(), f"{name}: run python -m bench.run"
    assert block in README.read_text()
    for row in ("| raw google-cloud-pubsub", "| pubsub-jobs, `worker --queue bench` |",
                "| drain at defaults / raw at defaults, 1 stream | >= 1 |"):
        assert row in block
    page = f"# A page\n\n{DOCS_BLOCK[0]}\nold\n{DOCS_BLOCK[1]}\n\nmore\n"
    once = replace_docs_block(page, results)
    assert once == f"# A page\n\n{block}\n\nmore\n"
    assert replace_docs_block(once, results) == once
