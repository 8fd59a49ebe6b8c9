"""The import graph, built from the source with ``ast``: no cycles between modules, and every
import points down the layers that ``src/enduro/__init__.py`` states."""

from __future__ import annotations

import ast
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "enduro"

# Top to bottom; a module may import its own layer and any layer below it. Kept in step with
# the top comment of src/enduro/__init__.py and docs/ARCHITECTURE.md.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli", "entry", "__main__"),
    ("api", "detach", "dashboard", "suite", "gate", "triage", "demo", "testing",
     "pytest_plugin"),
    ("run",),
    ("report",),
    ("faults",),
    ("verdict",),
    ("services",),
    ("engine",),
    ("observe",),
    ("net",),
    ("documents",),
    ("plan",),
    ("base",),
)
LEVEL = {part: level for level, parts in enumerate(LAYERS) for part in parts}

# Upward imports still to be mended, each named with the module that makes it.
KNOWN_UPWARD: frozenset[tuple[str, str]] = frozenset()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of enduro and the enduro modules it imports (anywhere in it, including
    imports inside functions and under TYPE_CHECKING: they are dependencies all the same)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                # `from enduro.x import y` depends on enduro.x.y when y is a module
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                           for a in node.names]
            for target in targets:
                if target == "enduro" or target.startswith("enduro."):
                    while target not in modules and "." in target:
                        target = target.rpartition(".")[0]
                    if target != name:
                        graph[name].add(target)
        graph.setdefault(name, set())
    return graph


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the package root re-exports, lazily, from every layer
    return LEVEL.get(parts[1])


def test_every_package_has_a_layer() -> None:
    tops = {_module_name(p).split(".")[1] for p in PACKAGE.rglob("*.py")
            if _module_name(p) != "enduro"}
    assert tops - set(LEVEL) == set(), "add the new package to LAYERS and to the top comment"


def test_imports_point_down_the_layers() -> None:
    upward = set()
    for module, targets in import_graph().items():
        mine = _layer(module)
        for target in targets:
            theirs = _layer(target)
            if mine is not None and theirs is not None and theirs < mine:
                upward.add((module, target))
    assert upward - KNOWN_UPWARD == set()
    assert KNOWN_UPWARD - upward == set(), "mended: remove it from KNOWN_UPWARD"


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # the package root imports lazily from everyone and is imported by nobody inside
    cycles = [c for c in cycles if "enduro" not in c
              and not any(edge in KNOWN_UPWARD for edge in pairwise(c))]
    assert cycles == []


def test_the_graph_sees_imports() -> None:
    graph = import_graph()
    assert "enduro.net.wire" in graph["enduro.net.conn"]
    assert "enduro.base.errors" in graph["enduro.plan.source"]
