"""The package is layered (docs/architecture.md): every import points down, and no two modules import each other.

Every import statement counts, at module level, inside functions and under
``TYPE_CHECKING`` alike. A module may import its own layer package and the
packages of lower layers; packages that share a layer (data and models,
evaluate and bench) do not import each other.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]

LAYERS = {
    "attrnet.core": 1,
    "attrnet.data": 2, "attrnet.models": 2, "attrnet.weights": 2,  # weights: the shipped default model
    "attrnet.train": 3,
    "attrnet.methods": 4,
    "attrnet.export": 5,
    "attrnet.serve": 6,
    "attrnet.evaluate": 7, "attrnet.bench": 7,
    "attrnet.cli": 8,
    "attrnet": 9,  # attrnet/__init__.py (lazy public API) and attrnet/__main__.py only
}
MAX_MODULE_LINES = 400


def _folders() -> dict[str, Path]:
    """Package name -> folder, as pyproject maps them (export/ and serve/ install as attrnet.export/.serve)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name: ROOT / name.replace(".", "/") for name in config["packages"]}
    folders.update({name: ROOT / path for name, path in config["package-dir"].items()})
    return folders


def _modules() -> dict[str, Path]:
    folders = _folders()
    mapped = {path.resolve() for name, path in folders.items() if name != "attrnet" and not path.is_relative_to(ROOT / "attrnet")}
    modules: dict[str, Path] = {}
    for package, folder in folders.items():
        for path in folder.glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            if path.resolve().parent in mapped and package == "attrnet":
                continue
            modules[name] = path
    return modules


MODULES = _modules()


def _targets(module: str, node: ast.Import | ast.ImportFrom, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
            base = ".".join(parts + ([base] if base else []))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    out = []
    for name in names:
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in MODULES and name != module and name.split(".")[0] == "attrnet":
            out.append(name)
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[module] = {t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                         for t in _targets(module, node, path.stem == "__init__")}
    return graph


def layer_package(module: str) -> str:
    """The layer package a module belongs to (the longest LAYERS key that prefixes it)."""
    for name in sorted(LAYERS, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    raise AssertionError(f"{module} is in no layer")


def test_every_module_belongs_to_a_layer_package():
    stray = [m for m in MODULES if layer_package(m) == "attrnet" and m not in ("attrnet", "attrnet.__main__")]
    assert not stray, f"modules outside the layer packages: {stray}"


def test_imports_only_point_down():
    graph = _graph()
    upward = []
    for module, targets in graph.items():
        own = layer_package(module)
        for target in targets:
            pkg = layer_package(target)
            if pkg != own and LAYERS[pkg] >= LAYERS[own]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that do not point to a lower layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycles_between_modules():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other: {cycles}"


def test_modules_stay_small():
    big = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not big, f"modules over {MAX_MODULE_LINES} lines (split them by job): {big}"


def test_the_checker_sees_deferred_and_relative_imports():
    tree = ast.parse("def f():\n    from attrnet.cli import main\nfrom . import batch\n")
    imports = sorted((n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))), key=lambda n: n.lineno)
    assert _targets("attrnet.serve.pipeline", imports[0], False) == ["attrnet.cli"]
    assert _targets("attrnet.serve.pipeline", imports[1], False) == ["attrnet.serve.batch"]
    assert layer_package("attrnet.methods.fafs.method") == "attrnet.methods"
