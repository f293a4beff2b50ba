"""Shared set-up of the reliability tests: a real downloaded Hypersim folder and the
real ``preprocess`` stage process run on it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from depthcore.synth.hypersim import generate_hypersim
from tests.helpers.reliability.crash_runs import SOURCE, download_sections, run_stage, stage_env


@pytest.fixture(scope="session")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A downloaded Hypersim folder (the preprocess input), made once."""
    root = tmp_path_factory.mktemp("reliability_raw")
    generate_hypersim(root / "source", SOURCE)
    (root / "params.yaml").write_text(yaml.safe_dump(download_sections(root / "source")))
    run_stage(["stages.download", "--params", "params.yaml"], root)
    return root / "data/raw"


def preprocess_run(
    work: Path,
    in_dir: Path,
    out_dir: Path,
    preexec_fn: Callable[[], Any] | None = None,
    **section: Any,
) -> subprocess.CompletedProcess:
    """Run ``python -m stages.preprocess`` in ``work`` (32x32 frames unless ``section`` says)."""
    params = {"in_dir": str(in_dir), "out_dir": str(out_dir), "resolution": [32, 32]}
    params |= {"workers": 1, **section}
    (work / "params.yaml").write_text(yaml.safe_dump({"preprocess": params}))
    return subprocess.run(
        [sys.executable, "-m", "stages.preprocess", "--params", "params.yaml"],
        cwd=work,
        env=stage_env(),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=preexec_fn,
    )
