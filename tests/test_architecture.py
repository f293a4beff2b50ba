"""The package's dependency graph: one direction, no cycles, no hidden imports.

Layers, lowest first (a module may import its own layer and the ones below):
foundation (config, errors, io, device, spaces, geometry, viz, run_logger) <- models <-
data <- synth and training <- evaluation <- predict <- tracking <- cli. ``stages`` and
``pipelines`` sit on top and the library never imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "depthcore"

LAYERS: dict[str, int] = {
    "config": 0, "errors": 0, "io": 0, "device": 0, "spaces": 0, "geometry": 0, "viz": 0,
    "run_logger": 0, "alignment": 0,
    "models": 1, "data": 2, "synth": 3, "training": 3, "evaluation": 4, "predict": 5,
    "tracking": 6, "cli": 7,
}  # fmt: skip
#: Heavy optional packages the library may import only inside functions, on purpose.
DEFERRED = ("mlflow", "prefect", "dvc", "great_expectations")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import statement in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "depthcore":
                found += [(f"depthcore.{a.name}", id(node) in top) for a in node.names]
            else:
                found.append((node.module, id(node) in top))
    return found


def all_modules() -> dict[str, list[tuple[str, bool]]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str, known: set[str]) -> str | None:
    """The longest known depthcore module that ``name`` refers to."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    return LAYERS.get(".".join(parts[1:3]), LAYERS[parts[1]])


def test_every_subpackage_has_a_layer() -> None:
    for module in all_modules():
        if module != "depthcore":
            assert module.split(".")[1] in LAYERS, f"{module}: add its package to LAYERS"


def test_imports_point_down_the_layers() -> None:
    modules = all_modules()
    bad = []
    for module, imports in modules.items():
        for target, _ in imports:
            dep = resolve(target, set(modules))
            if dep and dep != "depthcore" and layer(dep) > layer(module):
                bad.append(f"{module} -> {dep}")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    modules = all_modules()
    graph = {
        m: {d for t, _ in imps if (d := resolve(t, set(modules))) and d != m}
        for m, imps in modules.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_function_local_imports_of_our_own_modules() -> None:
    bad = [
        f"{m} imports {t} inside a function"
        for m, imps in all_modules().items()
        for t, top in imps
        if t.startswith("depthcore") and not top
    ]
    assert not bad, "\n".join(bad)


def test_library_never_imports_orchestration_at_module_level() -> None:
    bad = []
    for m, imps in all_modules().items():
        for t, top in imps:
            root = t.split(".")[0]
            if root in ("stages", "pipelines"):
                bad.append(f"{m} imports {t}")
            if top and root in DEFERRED:
                bad.append(f"{m} imports {t} at module level (defer it into the function)")
    assert not bad, "\n".join(bad)


def test_the_layer_test_can_fail(tmp_path: Path) -> None:
    """A models module importing evaluation is caught (the checker is not vacuous)."""
    bad = tmp_path / "depthcore" / "models" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from depthcore.evaluation.metrics import compute_metrics\n")
    (target,) = imports_of(bad)
    assert layer("depthcore.models.bad") < layer(target[0])
