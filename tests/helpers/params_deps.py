"""Which params keys each DVC stage reads, derived from the code, not from dvc.yaml.

A stage reads what its module loads: every ``load_section("<section>", <Class>, ...)`` call
in ``stages/<name>.py`` (found in its syntax tree), and of each section the keys of
params.yaml that are fields of the class. A field declared ``param(effect="none")`` is
bookkeeping (it changes no output) and is no DVC param.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import yaml

from depthcore.config import field_effects

REPO_ROOT = Path(__file__).resolve().parents[2]


def loaded_sections(module_path: Path) -> dict[str, type]:
    """``section -> dataclass`` of every ``load_section`` call with a literal section name."""
    tree = ast.parse(module_path.read_text())
    imported: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                imported[alias.asname or alias.name] = node.module
    found: dict[str, type] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "load_section"):
            continue
        section, cls = node.args[0], node.args[1]
        assert isinstance(section, ast.Constant) and isinstance(cls, ast.Name), (
            f"{module_path}: load_section needs a literal section and a class name"
        )
        module = importlib.import_module(imported[cls.id])
        found[section.value] = getattr(module, cls.id)
    return found


def stage_modules(dvc: dict[str, Any]) -> dict[str, Path]:
    """dvc.yaml stage name -> the ``stages/<name>.py`` its command runs."""
    return {
        name: REPO_ROOT / (stage.get("do", stage)["cmd"].split()[2].replace(".", "/") + ".py")
        for name, stage in dvc["stages"].items()
    }


def expected_params(dvc: dict[str, Any], params: dict[str, Any]) -> dict[str, dict[str, set[str]]]:
    """stage -> section -> the keys of params.yaml it reads that are DVC params."""
    expected: dict[str, dict[str, set[str]]] = {}
    for stage, module in stage_modules(dvc).items():
        per_section = {}
        for section, cls in loaded_sections(module).items():
            effects = field_effects(cls)
            keys = {k for k in params.get(section) or {} if effects.get(k, "none") != "none"}
            per_section[section] = keys
        expected[stage] = per_section
    return expected


def listed_params(body: dict[str, Any], params: dict[str, Any]) -> dict[str, set[str]]:
    """section -> keys a dvc.yaml stage lists (a whole section: all of its keys)."""
    listed: dict[str, set[str]] = {}
    for entry in body.get("params", []):
        assert isinstance(entry, str), f"params entry {entry!r}: only params.yaml keys are used"
        section, _, key = entry.partition(".")
        keys = {key} if key else set(params.get(section) or {})
        listed.setdefault(section, set()).update(keys)
    return listed


def load_yaml(name: str, root: Path = REPO_ROOT) -> dict[str, Any]:
    return yaml.safe_load((root / name).read_text())
