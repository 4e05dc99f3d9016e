"""The package's import graph, built from its source with ``ast``.

Every import counts, for the layering and for cycles: at module level, inside functions,
under ``TYPE_CHECKING``. An annotation-only import never executes, but a cycle through one
still ties two modules together (neither can be read or moved without the other);
``runtime_only`` leaves them out, to tell the two kinds apart. Run
``python -m tests.import_graph [PACKAGE_DIR]`` for the figures (modules, cycles, arrows
against the layering, largest modules); ``tests/unit/test_layout.py`` asserts them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE_ROOT = "pubsub_jobs"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE_ROOT

#: The layers, bottom first. A module may import its own layer's modules of the same
#: subpackage, and any lower layer; never a higher one. In the middle layers a subpackage
#: does not import its siblings (the worker does not import admin, and so on).
LAYERS: list[tuple[str, list[str]]] = [
    ("core", [
        "pubsub_jobs.jobs", "pubsub_jobs.message", "pubsub_jobs.outcome", "pubsub_jobs.perform",
        "pubsub_jobs.adapter", "pubsub_jobs._hooks", "pubsub_jobs.settings", "pubsub_jobs.errors",
        "pubsub_jobs._errors", "pubsub_jobs.context", "pubsub_jobs._codec", "pubsub_jobs.delivery",
        "pubsub_jobs.iteration", "pubsub_jobs._settings_errors",
        "pubsub_jobs.queues", "pubsub_jobs.unique",
        "pubsub_jobs._async_runner", "pubsub_jobs._default_adapter", "pubsub_jobs._enqueue_threads",
        # The dead set's and cron's folders hold core modules beside their operations: the
        # value the in-memory adapter builds (DeadJob); the cron expression and the schedules
        # that jobs.py and perform.py read, and their Terraform rows admin writes.
        "pubsub_jobs.dead.job",
        "pubsub_jobs.cron.expression", "pubsub_jobs.cron.schedules", "pubsub_jobs.cron.terraform",
    ]),
    ("middleware", ["pubsub_jobs.middleware"]),
    # _http: serving ASGI apps on uvicorn, fetching token certificates (push, dashboard).
    # _process: what an entry-point process sets up (logging, the one signal handler).
    ("adapters", ["pubsub_jobs.adapters", "pubsub_jobs._http", "pubsub_jobs._process"]),
    # Reading and changing a queue's dead set sits below the operations, since admin's queue
    # status counts it (``--count-dead``) and siblings of the next layer stay apart.
    ("dead set", ["pubsub_jobs.dead"]),
    ("delivery and operations", [
        "pubsub_jobs.worker", "pubsub_jobs.push", "pubsub_jobs.cron", "pubsub_jobs.admin",
        "pubsub_jobs.emulator",
    ]),
    ("entry points", [
        "pubsub_jobs.cli", "pubsub_jobs.dashboard", "pubsub_jobs.testing", "pubsub_jobs.__main__",
    ]),
    # Django's modules that run jobs sit on top beside the CLI: the push view (for a
    # project's URLs) and the pubsub_worker command, which Django finds only inside the
    # app, so both live in adapters/django. The backend, the app and the registering of
    # tasks (adapters/django/worker) only enqueue or register, and stay with the adapters.
    ("Django", [
        "pubsub_jobs.adapters.django.push", "pubsub_jobs.adapters.django.management",
    ]),
    ("public API", ["pubsub_jobs"]),
]
_SIBLINGS_APART = {"delivery and operations"}


def module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources(package_dir: Path) -> dict[str, Path]:
    return {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}


def build_graph(
    package_dir: Path = PACKAGE_DIR, *, runtime_only: bool = False
) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in its code; with
    ``runtime_only``, leaving out what is imported only under ``if TYPE_CHECKING:``)."""
    sources = _sources(package_dir)
    graph: dict[str, set[str]] = {}
    for name, path in sources.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        if runtime_only:
            _drop_type_checking_blocks(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(_resolve(alias.name, sources) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, name, is_package)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in sources else _resolve(base, sources))
        graph[name] = {t for t in targets if t in sources and t != name}
    return graph


def _drop_type_checking_blocks(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
            (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
            or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        ):
            node.body = [ast.Pass()]


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts.pop()
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _resolve(name: str, sources: Mapping[str, Path]) -> str:
    while name and name not in sources:
        name = name.rpartition(".")[0]
    return name


def layer_of(module: str) -> int | None:
    """Index of the layer whose longest prefix matches ``module``."""
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            nested = prefix != PACKAGE_ROOT and module.startswith(prefix + ".")
            if module == prefix or nested:
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    return None if best is None else best[1]


def _home(module: str) -> str:
    """The layer prefix a module belongs to (its subpackage)."""
    matches = [
        p for _, ps in LAYERS for p in ps
        if module == p or (p != PACKAGE_ROOT and module.startswith(p + "."))
    ]
    return max(matches, key=len) if matches else module


def against_direction(graph: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """Imports that run up the layering, or across sibling subpackages of a middle layer."""
    wrong = []
    for source, targets in graph.items():
        low = layer_of(source)
        for target in targets:
            high = layer_of(target)
            if low is None or high is None:
                continue
            if high > low or (
                high == low and LAYERS[low][0] in _SIBLINGS_APART
                and _home(source) != _home(target)
            ):
                wrong.append((source, target))
    return sorted(wrong)


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle (as a path back to its start) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:  # Tarjan's algorithm
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_through(group, graph) for group in sorted(groups)]


def _cycle_through(group: list[str], graph: Mapping[str, Iterable[str]]) -> list[str]:
    members = set(group)
    start = group[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return paths[node] + [start]
            if nxt in members and nxt not in paths:
                paths[nxt] = paths[node] + [nxt]
                queue.append(nxt)
    return group


def oversized_modules(limit: int, package_dir: Path = PACKAGE_DIR) -> list[tuple[str, int]]:
    sizes = ((m, len(p.read_text().splitlines())) for m, p in _sources(package_dir).items())
    return sorted((m, n) for m, n in sizes if n > limit)


def main(argv: list[str]) -> int:
    package_dir = Path(argv[0]).resolve() if argv else PACKAGE_DIR
    graph = build_graph(package_dir)
    found = cycles(graph)
    arrows = against_direction(graph)
    unplaced = sorted(m for m in graph if layer_of(m) is None)
    in_cycles = {m for c in found for m in c}
    print(f"modules: {len(graph)}, imports: {sum(len(t) for t in graph.values())}")
    print(f"cycles: {len(found)} (modules in a cycle: {len(in_cycles)})")
    for cycle in found:
        print("  " + " -> ".join(cycle))
    print(f"arrows against the layering: {len(arrows)}")
    for source, target in arrows:
        print(f"  {source} -> {target}")
    print(f"modules outside the layers: {len(unplaced)} {unplaced if unplaced else ''}")
    print("largest modules: " + ", ".join(
        f"{m} {n}" for m, n in sorted(oversized_modules(0, package_dir), key=lambda x: -x[1])[:5]
    ))
    return 1 if found or arrows or unplaced else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
