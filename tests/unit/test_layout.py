"""The package's layout: imports run one way, no import cycles, no module past ~400 lines.

The graph is built from the code with ``ast``, counting imports inside functions too: a cycle
hidden inside a function is still a cycle (see tests/import_graph.py for what counts). ``python -m
tests.import_graph`` prints the same figures for a person.
"""

from __future__ import annotations

from pathlib import Path

from tests.import_graph import (
    LAYERS,
    PACKAGE_ROOT,
    against_direction,
    build_graph,
    cycles,
    layer_of,
    oversized_modules,
)


def test_every_module_has_a_layer() -> None:
    graph = build_graph()
    assert len(graph) > 40
    unplaced = [m for m in graph if layer_of(m) is None]
    assert unplaced == [], f"modules outside every layer of LAYERS: {unplaced}"


def test_imports_run_one_way() -> None:
    arrows = against_direction(build_graph())
    assert arrows == [], "imports against the layering:\n" + "\n".join(
        f"  {a} -> {b}" for a, b in arrows
    )


def test_no_import_cycles() -> None:
    found = cycles(build_graph(runtime_only=True))
    assert found == [], "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in found)


def test_no_import_cycles_even_through_type_only_imports() -> None:
    """An import under ``if TYPE_CHECKING:`` never runs, but a cycle through it still ties
    the modules together: the core's ``Job`` and its registry, the errors and the types
    they carry, were such circles."""
    found = cycles(build_graph())
    assert found == [], "import cycles (type-only imports counted):\n" + "\n".join(
        "  " + " -> ".join(c) for c in found)


def test_the_checker_sees_a_cycle_through_a_type_only_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n")
    assert cycles(build_graph(package)) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert cycles(build_graph(package, runtime_only=True)) == []


def test_no_module_is_oversized() -> None:
    assert oversized_modules(limit=420) == []


def test_the_core_imports_nothing_outside_itself() -> None:
    graph = build_graph()
    core = [m for m in graph if layer_of(m) == 0]
    assert {"pubsub_jobs.jobs", "pubsub_jobs.perform", "pubsub_jobs.outcome"} <= set(core)
    outside = sorted(
        (m, t) for m in core for t in graph[m] if t.startswith(PACKAGE_ROOT) and layer_of(t) != 0
    )
    assert outside == []


def test_the_checker_catches_an_arrow_against_the_direction() -> None:
    """The checker itself can fail: a core module importing the worker is reported."""
    graph = {"pubsub_jobs.jobs": {"pubsub_jobs.worker.runner"},
             "pubsub_jobs.worker.runner": set()}
    assert against_direction(graph) == [("pubsub_jobs.jobs", "pubsub_jobs.worker.runner")]
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]
    assert LAYERS[0][0] == "core"


#: The loggers not named for their module, and why: the logging middleware's job lines go
#: to a logger the user names (default ``pubsub_jobs.jobs``, documented); the demo quiets
#: the whole package.
_OTHER_LOGGERS = {
    "pubsub_jobs/middleware/logging.py": 1,
    "pubsub_jobs/cli/demo.py": 1,
}


def test_loggers_are_named_for_their_module() -> None:
    """``logging.getLogger(__name__)`` everywhere, so a log line names the module that
    wrote it (a push server's failure is not logged as the worker's)."""
    root = Path(__file__).resolve().parents[2]
    found = {}
    for path in sorted((root / PACKAGE_ROOT).rglob("*.py")):
        calls = [line for line in path.read_text().splitlines()
                 if "logging.getLogger(" in line and "getLogger(__name__)" not in line]
        if calls:
            found[path.relative_to(root).as_posix()] = len(calls)
    assert found == _OTHER_LOGGERS
