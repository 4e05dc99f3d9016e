"""The package's layout: imports run one way, no import cycles, no module past ~400 lines.

The graph is built from the code with ``ast``, counting imports inside functions too: a cycle
hidden inside a function is still a cycle (see tests/import_graph.py for what counts). ``python -m
tests.import_graph`` prints the same figures for a person.
"""

from __future__ import annotations

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


def test_no_module_is_oversized() -> None:
    assert oversized_modules(limit=420) == []


def test_the_core_imports_nothing_outside_itself() -> None:
    graph = build_graph()
    core = [m for m in graph if layer_of(m) == 0]
    assert {"pubsub_jobs.job", "pubsub_jobs.perform", "pubsub_jobs.outcome"} <= set(core)
    outside = sorted(
        (m, t) for m in core for t in graph[m] if t.startswith(PACKAGE_ROOT) and layer_of(t) != 0
    )
    assert outside == []


def test_the_checker_catches_an_arrow_against_the_direction() -> None:
    """The checker itself can fail: a core module importing the worker is reported."""
    graph = {"pubsub_jobs.job": {"pubsub_jobs.worker.runner"}, "pubsub_jobs.worker.runner": set()}
    assert against_direction(graph) == [("pubsub_jobs.job", "pubsub_jobs.worker.runner")]
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]
    assert LAYERS[0][0] == "core"
