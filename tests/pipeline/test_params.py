"""params.yaml and dvc.yaml agree with the code: every section loads, typos fail naming the key."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from depthcore.config import ConfigError
from stages.params import SECTIONS, check_params

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_section_of_params_yaml_loads() -> None:
    loaded = check_params(REPO_ROOT / "params.yaml")
    assert set(loaded) == set(SECTIONS)
    assert loaded["register"].objectives == ("depthart", "var_tf", "regression")


def test_unknown_key_fails_the_stage_naming_file_and_key(tmp_path: Path) -> None:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["register"]["alignmnet"] = "median"
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params))
    proc = subprocess.run(
        [sys.executable, "-m", "stages.register", "--params", str(bad)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"{bad}: unknown key register.alignmnet in section 'register'" in proc.stderr
    with pytest.raises(ConfigError, match="register.alignmnet"):
        check_params(bad)


def test_dvc_stages_read_known_sections_and_existing_modules() -> None:
    dvc = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        body = stage.get("do", stage)
        module = body["cmd"].split()[2]
        assert module.startswith("stages."), name
        assert (REPO_ROOT / (module.replace(".", "/") + ".py")).is_file(), module
        for section in body["params"]:
            assert section.split(".")[0] in SECTIONS, f"stage {name} reads unknown {section}"
        for dep in body["deps"]:
            if "${" not in dep and not dep.startswith(("data/", "models", "outputs/")):
                assert (REPO_ROOT / dep).exists(), f"stage {name}: code dep {dep} missing"


# Foundation helpers every stage uses; a change there does not invalidate data, so they are
# deliberately not listed as deps (a docstring fix would otherwise rerun the whole pipeline).
FOUNDATION = {"depthcore/__init__.py", "depthcore/config.py", "depthcore/io.py",
              "depthcore/errors.py", "stages/common.py"}  # fmt: skip


def _depthcore_imports(path: Path, seen: set[str]) -> set[str]:
    """Repository paths of the depthcore modules ``path`` imports, transitively (lazy too)."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if not name.startswith("depthcore"):
                continue
            base = REPO_ROOT / name.replace(".", "/")
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                rel = candidate.relative_to(REPO_ROOT).as_posix()
                if candidate.is_file() and rel not in seen:
                    seen.add(rel)
                    _depthcore_imports(candidate, seen)
    return seen


def test_every_stage_lists_the_depthcore_code_it_imports() -> None:
    dvc = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        body = stage.get("do", stage)
        module = REPO_ROOT / (body["cmd"].split()[2].replace(".", "/") + ".py")
        deps = [d.rstrip("/") for d in body["deps"]]
        used = _depthcore_imports(module, set()) - FOUNDATION
        missing = sorted(
            f for f in used if f.endswith(".py") and not any(
                f == d or f.startswith(d + "/") for d in deps
            ) and not f.endswith("/__init__.py")
        )  # fmt: skip
        assert not missing, f"dvc.yaml stage {name} does not list the code it uses: {missing}"
        code_deps = [d for d in deps if d.startswith("depthcore/") and "resources" not in d]
        unused = [d for d in code_deps if not any(f == d or f.startswith(d + "/") for f in used)]
        assert not unused, f"dvc.yaml stage {name} lists code it does not import: {unused}"
