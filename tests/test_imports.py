"""The import graph, read from the source: no cycle, and every import points down the layers.

The layers (``docs/architecture.md`` draws them): basics, kernels, parts, the
composer, drivers, faces.  A module may import its own layer or a lower
one.  Imports under ``if TYPE_CHECKING:`` are not imports at run time and
are left out; imports inside functions count (they run when called).
Importing ``gossamer.a.b`` also imports the package ``gossamer.a``, so that
is an edge too (unless it is the importer's own package, which is loading
already).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gossamer"

LAYERS: list[tuple[str, ...]] = [
    # 0 basics
    (
        "gossamer._version",
        "gossamer.errors",
        "gossamer.ids",
        "gossamer.config",
        "gossamer.wire",
        "gossamer.observe",
        "gossamer.effects",
    ),
    # 1 kernels: data structures and formulas the parts are built from
    (
        "gossamer.clocks",
        "gossamer.membership",
        "gossamer.transmit",
        "gossamer.failure.lifeguard",
        "gossamer.failure.phi",
        "gossamer.ring.ring",
        "gossamer.ring.hashing",
        "gossamer.ring.bounded",
        "gossamer.ring.tracker",
        "gossamer.ring",
        "gossamer.crdt",
    ),
    # 2 parts
    (
        "gossamer.failure",
        "gossamer.membership.hyparview",
        "gossamer.membership.plumtree",
        "gossamer.ring.part",
        "gossamer.ring.view",
        "gossamer.admin",
        "gossamer.registry",
    ),
    # 3 the composer and the catalogue
    ("gossamer.core", "gossamer.parts"),
    # 4 drivers, and what runs on them
    ("gossamer.sim", "gossamer.runtime", "gossamer.debug", "gossamer.testing", "gossamer.lab"),
    # 5 faces
    ("gossamer.cli", "gossamer.__main__", "gossamer"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    best, found = -1, None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    assert found is not None, f"{module} is in no layer: add it to LAYERS"
    return found


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(module: str) -> set[str]:
    """The gossamer modules ``module`` imports at run time (and their packages)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in MODULES else base)
        for target in targets:
            if target.split(".")[0] != "gossamer":
                continue
            pieces = target.split(".")
            # Importing a.b.c runs a/__init__ and a/b/__init__ first, except
            # the module's own packages, which are loading already.
            for end in range(2, len(pieces) + 1):
                name = ".".join(pieces[:end])
                if name in MODULES and name != module and not module.startswith(name + "."):
                    found.add(name)
    return found


GRAPH = {module: imports(module) for module in MODULES}


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module: str) -> None:
    upward = sorted(t for t in GRAPH[module] if layer(t) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports higher layers: {upward}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (depth first, with colours), or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        colour[module] = grey
        stack.append(module)
        for target in sorted(graph[module]):
            if colour[target] == grey:
                return [*stack[stack.index(target) :], target]
            if colour[target] == white and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        colour[module] = black
        return None

    for module in sorted(graph):
        if colour[module] == white and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_no_import_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle)


def test_the_checker_sees_cycles_packages_and_layers() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert "gossamer.core" in GRAPH["gossamer.runtime.engine"]
    assert "gossamer.ring" in GRAPH["gossamer.parts"]  # the package runs before ring.part
    assert "gossamer.runtime.node" not in GRAPH["gossamer"]  # lazy: only under TYPE_CHECKING
    assert layer("gossamer.runtime.engine") > layer("gossamer.core") > layer("gossamer.ring.part")
