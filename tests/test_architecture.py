"""The package's dependency graph: one direction, no cycles, no hidden imports.

A module's *unit* is the name right under ``depthcore/`` (``io`` for depthcore/io.py,
``training`` for everything in depthcore/training/; ``depthcore`` for the package's own
``__init__``). Units sit in layers, lowest first; a module may import its own unit and
the units of LOWER layers only, so units that share a layer never import each other:

    depthcore errors geometry spaces png    (import nothing of ours)
    config io device                        (errors)
    viz alignment run_logger run_inputs     (the foundation's services)
    profiles
    models
    data export
    synth training evaluation predict       (siblings: none imports another)
    tracking
    cli

``stages`` and ``pipelines`` sit on top and the library never imports them. The tests import
from bench/ only the studies they check.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "depthcore"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("depthcore", "errors", "geometry", "spaces", "png"),
    ("config", "io", "device"),
    ("viz", "alignment", "run_logger", "run_inputs", "profiles"),
    ("models",),
    ("data", "export"),
    ("synth", "training", "evaluation", "predict"),
    ("tracking",),
    ("cli",),
)
LAYER_OF: dict[str, int] = {unit: i for i, units in enumerate(LAYERS) for unit in units}

#: Heavy optional packages the library may import only inside functions, on purpose.
DEFERRED = (
    "mlflow",
    "prefect",
    "dvc",
    "great_expectations",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "av",
)


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


def unit(module: str) -> str:
    """The name right under ``depthcore`` that ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def violations(modules: dict[str, list[tuple[str, bool]]]) -> list[str]:
    """Every import of ``modules`` into a unit that is not its own and not in a lower layer."""
    bad = []
    for module, imports in modules.items():
        for target, _ in imports:
            dep = resolve(target, set(modules))
            if dep and unit(dep) != unit(module) and LAYER_OF[unit(dep)] >= LAYER_OF[unit(module)]:
                bad.append(f"{module} -> {dep}")
    return bad


def test_every_unit_has_a_layer_and_every_layer_name_exists() -> None:
    units = {unit(m) for m in all_modules()}
    assert not units - set(LAYER_OF), f"add to LAYERS: {sorted(units - set(LAYER_OF))}"
    assert not set(LAYER_OF) - units, f"not in depthcore: {sorted(set(LAYER_OF) - units)}"


def test_imports_point_down_the_layers() -> None:
    bad = violations(all_modules())
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


#: Units whose commands may import our own modules inside the command's function: the
#: command line, so that ``depthart predict`` does not load what only ``lineage`` or
#: ``profile`` use (start-up time, issue 28). The layer and cycle tests still see them.
LOCAL_IMPORTS_ALLOWED = ("cli",)


def test_no_function_local_imports_of_our_own_modules() -> None:
    """A hidden import makes the graph lie; only the entry points defer theirs (above)."""
    bad = [
        f"{m} imports {t} inside a function"
        for m, imps in all_modules().items()
        for t, top in imps
        if t.startswith("depthcore") and not top and unit(m) not in LOCAL_IMPORTS_ALLOWED
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


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("depthcore.models.bad", "from depthcore.evaluation.metrics import compute_metrics"),
        ("depthcore.evaluation.bad", "from depthcore.training.trainer import Trainer"),
        ("depthcore.predict.bad", "import depthcore.evaluation.run"),
        ("depthcore.io", "from depthcore.run_logger import NullLogger"),
    ],
)
def test_the_layer_test_can_fail(tmp_path: Path, module: str, source: str) -> None:
    """An import up the layers, or into a sibling of the same layer, is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text(source + "\n")
    modules = all_modules()
    assert not violations(modules)
    (found,) = violations({**modules, module: imports_of(bad)})
    assert found.startswith(f"{module} -> depthcore.")


def test_tests_import_from_bench_only_the_studies() -> None:
    """What the tests use (servers, harnesses, recipes) lives in tests/helpers, and bench
    scripts import it from there; a test imports no speed benchmark or screenshot script,
    only the studies it checks (bench.learning), and the helpers import nothing of bench."""
    bad = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for target, _ in imports_of(path):
            if target.split(".")[0] != "bench":
                continue
            if rel.startswith("tests/helpers/") or not target.startswith("bench.learning."):
                bad.append(f"{rel} imports {target}")
    assert not bad, "\n".join(bad)
