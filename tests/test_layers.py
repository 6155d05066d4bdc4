"""The house is easy to walk: layers without import cycles, small modules, every op complete.

Imports are read from the source (``ast``), function-local ones included; only imports under
``if TYPE_CHECKING:`` (never executed) are left out.  A package's ``__init__`` counts as a module of its
own; importing ``tte.x.y`` is not counted as importing ``tte`` and ``tte.x``.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "tte"

# Each layer may import only from the layers below it; a module may import its own package's modules.
LAYERS = [
    {"tte.errors", "tte.version"},  # leaves
    {"tte.units"},
    {"tte.ir"},  # graph, op registry, verifier, printer, executor, shared facts
    {"tte.reference"},  # integer semantics and float numerics
    {"tte.ops"},  # one module per op family: every facet of every op
    {"tte.autodiff", "tte.frontend", "tte.inspect"},
    {"tte.passes"},
    {"tte.report"},
    {"tte.codegen"},
    {"tte.program", "tte.zoo", "tte.data"},  # tte.data: samples prepared for a model's input, sample files
    {"tte.pipeline"},
    {"tte.plan", "tte.device"},
    {"tte.trainer"},  # tte.train: compile, train the native C on samples, test
    {"tte.trials"},  # tte search's fine-tune trials: in this process, worker processes or Ray tasks; their cache
    {"tte.evolution"},  # tte search's space of schemes, its evolutionary search and the finalists
    {"tte.search"},  # tte.search: contribution analysis + evolutionary search of a sparse-update scheme
    {"tte.cli"},
    {"tte.__main__", "tte"},
]

def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports_of(name: str) -> set[str]:
    """tte modules that module ``name`` imports (resolved to modules where a name is a submodule)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "tte")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "tte":
                return
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.add(sub if sub in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {m for m in found if m in MODULES and m != name}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module (or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def test_the_import_reader_sees_relative_and_local_imports():
    assert "tte.ir.graph" in GRAPH["tte.ir"]
    assert any(m.startswith("tte.ir") for m in GRAPH["tte.program"])


def test_no_import_cycles():
    cycles = strongly_connected(GRAPH)
    assert not cycles, "import cycles between tte modules: " + "; ".join(" <-> ".join(c) for c in cycles)


def _layer(module: str) -> tuple[int, str]:
    for i, layer in enumerate(LAYERS):
        for top in sorted(layer, key=len, reverse=True):
            if module == top or module.startswith(top + "."):
                return i, top
    raise AssertionError(f"module {module} is in no layer: add it to LAYERS")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_downward(module):
    level, top = _layer(module)
    for other in GRAPH[module]:
        olevel, otop = _layer(other)
        if otop == top:
            continue
        allowed = olevel < level
        assert allowed, f"{module} (layer {level}, {top}) imports {other} (layer {olevel}, {otop})"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= 600, f"{module} has {lines} lines: split it"
