"""STYLE.md section 1: imports point down the layers only; ray only in trial drivers."""
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
              "search_spaces/rewrite.py"}
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
    assert not forbidden, f"{path.relative_to(ROOT)} imports {sorted(forbidden)} (layering, STYLE.md section 1)"
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
