"""Real failures of the features and synth stages end cleanly (issue 25, round two).

The features stage writes its HDF5 caches under a real file size limit (RLIMIT_FSIZE,
as under ``ulimit -f``): exit 1, one ``error:`` line naming the cache, no traceback, no
segfault, no temporary, the previous caches intact. SIGTERM reaches the synth stage
while its worker processes render: exit 143, no temporary, no worker left, and a
rerun completes with the same files.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from depthcore.models import build_model, resolve_config
from depthcore.models.checkpoint import save_vae
from tests.helpers.reliability.crash_runs import leftovers, stage_env, tree_digest
from tests.reliability.test_failure_paths import _fsize_limit, _gone, _one_clean_error, _signal_when


def _stage(
    work: Path, stage: str, section: dict, preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess:
    (work / "params.yaml").write_text(yaml.safe_dump({stage: section}))
    return subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", "--params", "params.yaml"],
        cwd=work, env=stage_env(), capture_output=True, text=True, timeout=300,
        preexec_fn=preexec_fn,
    )  # fmt: skip


def test_file_size_limit_features_stage(processed_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    vae, _ = build_model(resolve_config("tiny"))
    save_vae(tmp_path / "vae.safetensors", vae)
    out = tmp_path / "features"
    section = {
        "data_dir": str(processed_dir), "tokenizer": str(tmp_path / "vae.safetensors"),
        "out_dir": str(out), "device": "cpu", "batch_size": 4, "chunk_frames": 4,
    }  # fmt: skip
    first = _stage(tmp_path, "features", section)
    assert first.returncode == 0, first.stderr
    before = tree_digest(out)
    assert sorted(before) == ["train.h5", "val.h5"]
    proc = _stage(tmp_path, "features", section, preexec_fn=_fsize_limit(20_000))
    _one_clean_error(proc, out / "train.h5", "file size limit")
    assert tree_digest(out) == before and leftovers(out) == []
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_sigterm_stops_synth_and_its_workers(tmp_path: Path) -> None:
    out = tmp_path / "source"
    section = {
        "out_dir": str(out), "n_scenes": 12, "cameras_per_scene": 1, "frames_per_camera": 2,
        "height": 32, "width": 32, "val_scenes": 1, "test_scenes": 1, "lens_shift_scenes": 1,
        "window_views": 1, "flat_views": 1, "excluded_frames": 1, "workers": 2,
    }  # fmt: skip
    first = _stage(tmp_path, "synth", section)
    assert first.returncode == 0, first.stderr
    before = tree_digest(out)
    cmd = [sys.executable, "-m", "stages.synth", "--params", "params.yaml"]
    proc, children = _signal_when(cmd, tmp_path, ".source.tmp-*/ai_*.zip", signal.SIGTERM, False)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert "interrupted (SIGTERM)" in proc.stderr and "Traceback" not in proc.stderr
    # the two render workers (and the pool's helper process, if any) stopped
    assert len(children) >= 2 and _gone(children), children
    assert tree_digest(out) == before and leftovers(out) == []  # previous output whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".source")]
    rerun = _stage(tmp_path, "synth", section)
    assert rerun.returncode == 0, rerun.stderr
    assert tree_digest(out) == before  # deterministic: the same files again
