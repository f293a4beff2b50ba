"""Kill stages with SIGKILL at a random point, rerun them, and compare with an uninterrupted run.

Used by ``tests/pipeline/test_kill_data_stages.py``, ``tests/training/test_kill_resume.py``
and ``python -m bench.reliability.report``. Each scenario runs the real stage command
(``python -m stages.<name> --params params.yaml``) in a work folder:

1. once uninterrupted (the reference);
2. per seed: again in a fresh folder, killed with SIGKILL once it has made a random
   amount of progress (seeded), then the outputs DVC deletes before a rerun are
   deleted (every ``outs``/``metrics``/``plots`` path of the stage in ``dvc.yaml``
   without ``persist: true``) when ``as_dvc`` is set, and the stage is run again.

Reported per run: whether the kill landed before the stage finished, whether the
rerun's outputs equal the reference (SHA-256 of every file), and any temporary
files left (``*.part``, ``.NAME.tmp-PID``, ``.NAME.old-PID``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from safetensors import safe_open

from depthcore.data.shards import ShardDataset
from depthcore.io import file_sha256
from depthcore.models import build_model, resolve_config
from depthcore.models.checkpoint import save_vae
from depthcore.synth.hypersim import SynthConfig, generate_hypersim
from depthcore.training.feature_cache import build_feature_cache

REPO = Path(__file__).resolve().parents[3]
TEMP_MARKERS = (".part", ".tmp-", ".old-")


def file_digest(path: Path) -> str:
    """SHA-256 of a file; of a ``.safetensors`` file's content (metadata, then each tensor's
    name, dtype, shape and bytes, sorted by name), since safetensors writes its metadata
    in a different order in each process."""
    if path.suffix != ".safetensors":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    with safe_open(str(path), framework="pt") as fh:
        digest.update(json.dumps(fh.metadata() or {}, sort_keys=True).encode())
        for name in sorted(fh.keys()):
            t = fh.get_tensor(name).contiguous()
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def tree_digest(root: Path, only: tuple[str, ...] = ()) -> dict[str, str]:
    """:func:`file_digest` of every file under ``root`` by relative path (or of ``only``)."""
    files = [root / o for o in only] if only else sorted(root.rglob("*"))
    return {str(p.relative_to(root)): file_digest(p) for p in files if p.is_file()}


def leftovers(root: Path) -> list[str]:
    """Temporary files and folders under (and beside) ``root``."""
    found = [p for p in root.parent.rglob("*") if any(m in p.name for m in TEMP_MARKERS)]
    return sorted(str(p.relative_to(root.parent)) for p in found)


def dvc_removed_outs(
    stage: str, item: str | None = None, dvc_file: Path = REPO / "dvc.yaml"
) -> list[str]:
    """The paths ``dvc repro`` deletes before running ``stage`` (``stage@item`` for a foreach):
    its outs, metrics and plots, except those marked ``persist: true``."""
    spec = yaml.safe_load(dvc_file.read_text())["stages"][stage]
    spec = spec.get("do", spec)
    removed = []
    for kind in ("outs", "metrics", "plots"):
        for entry in spec.get(kind, []):
            path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
            if not (opts or {}).get("persist", False):
                removed.append(path.replace("${item}", item or ""))
    return removed


def stage_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("DEPTHCORE_DEBUG", None)
    return env


def run_stage(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m stages.<...>`` in ``cwd``; raises with its stderr if it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=stage_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def kill_when(
    args: list[str], cwd: Path, ready: Callable[[], bool], delay_s: float, timeout: float = 600
) -> bool:
    """Start the stage, wait until ``ready()`` (then ``delay_s`` more), SIGKILL it.
    Returns True when the kill landed (False: the stage finished first)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=stage_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{args}: not ready after {timeout} s")
            time.sleep(0.01)
        time.sleep(delay_s)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    return proc.returncode == -signal.SIGKILL


@dataclass
class KillRun:
    """One killed-and-rerun stage."""

    stage: str
    seed: int
    killed: bool
    equal: bool
    leftovers: list[str] = field(default_factory=list)
    note: str = ""


def _params(work: Path, sections: dict) -> None:
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(sections))


def kill_and_rerun(
    stage: str,
    sections: dict,
    out: str,
    work: Path,
    reference: dict[str, str],
    seed: int,
    progress: Callable[[Path, random.Random], Callable[[], bool]],
    stage_args: list[str] | None = None,
    item: str | None = None,
    as_dvc: bool = True,
    only: tuple[str, ...] = (),
    max_delay_s: float = 0.3,
) -> KillRun:
    """One seed: run, kill after random progress (plus up to ``max_delay_s``), (DVC's
    deletions,) rerun, compare."""
    rng = random.Random(seed)
    _params(work, sections)
    args = stage_args or [f"stages.{stage}", "--params", "params.yaml"]
    killed = kill_when(args, work, progress(work, rng), delay_s=rng.uniform(0.0, max_delay_s))
    kept = []
    if as_dvc:
        for rel in dvc_removed_outs(stage, item):
            target = work / rel
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        kept = [str(p) for p in (work / out).rglob("*")] if (work / out).exists() else []
    proc = run_stage(args, work)
    digest = tree_digest(work / out, only)
    note = "resumed" if "resumed" in proc.stderr else ("kept " + str(len(kept)) if kept else "")
    return KillRun(stage, seed, killed, digest == reference, leftovers(work / out), note)


# --- the scenarios -----------------------------------------------------------------------

SOURCE = SynthConfig(
    n_scenes=3, cameras_per_scene=1, frames_per_camera=6, height=32, width=32, val_scenes=1,
    test_scenes=1, lens_shift_scenes=1, window_views=1, flat_views=0, excluded_frames=0,
)  # fmt: skip


def download_sections(source: Path) -> dict:
    return {"download": {"source": f"file://{source}", "out_dir": "data/raw", "workers": 2}}


def preprocess_sections(raw: Path) -> dict:
    section = {"in_dir": str(raw), "out_dir": "data/processed", "resolution": [64, 64]}
    return {"preprocess": {**section, "workers": 1, "shard_size": 4}}


def reference_data_runs(root: Path) -> tuple[Path, Path]:
    """A :data:`SOURCE` under ``root/source`` and uninterrupted download + preprocess runs
    of it in ``root/reference``: what every killed data run is compared with.

    Returns ``(source, reference)``; the outputs are ``reference/data/{raw,processed}``.
    """
    source = root / "source"
    generate_hypersim(source, SOURCE)
    ref = root / "reference"
    ref.mkdir()
    raw = ref / "data/raw"
    (ref / "params.yaml").write_text(
        yaml.safe_dump({**download_sections(source), **preprocess_sections(raw)})
    )
    run_stage(["stages.download", "--params", "params.yaml"], ref)
    run_stage(["stages.preprocess", "--params", "params.yaml"], ref)
    return source, ref


def train_sections(setup: Path, steps: int = 24) -> dict:
    return {
        "train": {
            "model": "tiny", "tokenizer": str(setup / "vae.safetensors"),
            "features_dir": str(setup / "features"), "out_dir": "models", "steps": steps,
            "batch_size": 2, "ckpt_every": 4, "keep_ckpts": 2, "val_frames": 2,
            "val_batch_size": 2, "log_every": 1, "device": "cpu", "num_threads": 1,
            "warmup_steps": 2,
        },
        "tracking": {"backend": "none"},
    }  # fmt: skip


def make_train_setup(processed: Path, root: Path) -> Path:
    """A frozen, randomly initialised tiny tokenizer and its train/val feature caches
    in ``root`` (what the train stage reads), from 64x64 shards in ``processed``."""
    torch.manual_seed(0)
    vae, _ = build_model(resolve_config("tiny"))
    save_vae(root / "vae.safetensors", vae)
    for split in ("train", "val"):
        ds = ShardDataset(processed, split)
        build_feature_cache(
            vae.eval(), ds, root / "features" / f"{split}.h5",
            image_size=64, space=ds.space, split=split,
            tokenizer_sha256=file_sha256(root / "vae.safetensors"),
        )  # fmt: skip
    return root


def members_written(out: str, wanted: int) -> Callable[[Path, random.Random], Callable[[], bool]]:
    """Ready once a random number (1 .. 2/3 of ``wanted``) of members is in ``out``
    (not later: a kill that lands after the stage finished tests nothing)."""

    def progress(work: Path, rng: random.Random) -> Callable[[], bool]:
        k = rng.randint(1, max(1, wanted * 2 // 3))
        return lambda: sum(1 for _ in (work / out).rglob("*.hdf5")) >= k

    return progress


def temp_folder_exists(out: str) -> Callable[[Path, random.Random], Callable[[], bool]]:
    """Ready once the stage's atomic temporary output folder exists."""

    def progress(work: Path, rng: random.Random) -> Callable[[], bool]:
        target = work / out
        return lambda: any(target.parent.glob(f".{target.name}.tmp-*"))

    return progress


def checkpoint_written(out: str) -> Callable[[Path, random.Random], Callable[[], bool]]:
    """Ready once the first training checkpoint is complete."""

    def progress(work: Path, rng: random.Random) -> Callable[[], bool]:
        return lambda: any((work / out).glob("ckpt/step_*/state.pt"))

    return progress
