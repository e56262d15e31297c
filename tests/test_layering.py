"""Imports point down the layers only (mobilenas -> pipeline -> nas/netadapt -> latency/training
-> search_spaces/storage; nas and netadapt never import each other), ray only in trial drivers,
no import cycle between any two modules (function-level imports included), and modules and
functions short enough to read."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mobilenas", "pipeline", "nas", "netadapt", "latency", "training", "search_spaces", "storage")
ALLOWED = {
    "mobilenas": {"pipeline", "nas", "netadapt", "latency", "training", "search_spaces", "mobilenas", "storage"},
    "pipeline": {"pipeline", "nas", "netadapt", "latency", "training", "search_spaces", "storage"},
    "nas": {"latency", "training", "search_spaces", "nas", "storage"},
    "netadapt": {"latency", "training", "search_spaces", "netadapt", "storage"},
    "latency": {"search_spaces", "latency", "storage"},
    "training": {"search_spaces", "training", "storage"},
    "search_spaces": {"search_spaces"},
    "storage": {"storage"},
}
TORCH_FREE = {"search_spaces/spec.py", "search_spaces/encoding.py", "search_spaces/mnasnet_space.py",
              "search_spaces/counting.py", "search_spaces/paper_table.py", "search_spaces/timm_arch.py",
              "search_spaces/rewrite.py", "search_spaces/widths.py", "search_spaces/costs.py",
              "search_spaces/blocks/__init__.py", "search_spaces/blocks/base.py", "search_spaces/blocks/registry.py",
              "search_spaces/blocks/bneck.py", "search_spaces/blocks/conv.py"}
RAY_MODULES = {"nas/tune.py"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def python_files():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield package, path


@pytest.mark.parametrize("package, path", list(python_files()), ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v)
def test_imports_follow_layers(package, path):
    roots = imported_roots(path)
    forbidden = (roots & set(PACKAGES)) - ALLOWED[package]
    assert not forbidden, f"{path.relative_to(ROOT)} imports {sorted(forbidden)} (layering, ARCHITECTURE.md)"
    rel = str(path.relative_to(ROOT))
    if "ray" in roots:
        assert rel in RAY_MODULES or rel.startswith("netadapt/parallel"), f"{rel} imports ray"
    if package == "search_spaces":
        assert roots <= {"search_spaces", "torch", "numpy", "__future__", "dataclasses", "typing", "re", "json",
                         "io", "warnings", "pathlib", "math", "itertools", "functools", "collections", "enum"}, rel
    if rel in TORCH_FREE:
        assert "torch" not in roots, f"{rel} must not import torch"


def test_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import nas.search\nfrom training import data\n")
    assert imported_roots(bad) == {"nas", "training"}


KNOWN_CYCLES: set[frozenset[str]] = set()  # none: a cycle between modules is a bug to fix, not to list


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The project modules ``path`` imports anywhere in it (function bodies too): ``from a.b import
    c`` names module ``a.b.c`` if there is one, else ``a.b``; the packages on the way count too
    (importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py``)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    found = set()
    for imported in names:
        parts = imported.split(".")
        found |= {".".join(parts[:n]) for n in range(1, len(parts) + 1)} & modules
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    files = [path for _, path in python_files()]
    modules = {module_name(path) for path in files}
    return {module_name(path): imported_modules(path, modules) for path in files}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of more than one module
    (Tarjan's algorithm, iterative), each starting at its smallest module name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return [_cycle_through(graph, component) for component in components]


def _cycle_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not a cycle")


def test_no_import_cycles():
    cycles = [c for c in find_cycles(import_graph()) if frozenset(c) not in KNOWN_CYCLES]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_cycle_finder_reports_the_cycle_and_nothing_else():
    graph = {"a.x": {"a.y"}, "a.y": {"a.z", "b"}, "a.z": {"a.x"}, "b": {"c"}, "c": set(), "d": {"e"}, "e": {"d"}}
    assert find_cycles(graph) == [["a.x", "a.y", "a.z", "a.x"], ["d", "e", "d"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_and_relative_imports_are_edges(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg import b\n    from .c import thing\n    import os\n")
    modules = {"pkg", "pkg.a", "pkg.b", "pkg.c"}
    assert imported_modules(package / "a.py", modules, root=tmp_path) == {"pkg", "pkg.b", "pkg.c"}


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def test_modules_and_functions_stay_short():
    """No package module over 400 lines, no function over 60 (orchestration calls named steps)."""
    long = []
    for _, path in python_files():
        source = path.read_text()
        rel = path.relative_to(ROOT)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            long.append(f"{rel}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source, filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{rel}:{node.lineno} {node.name}: {lines} lines")
    assert not long, "too long: " + "; ".join(long)
