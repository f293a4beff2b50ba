"""``depthart predict`` under torchrun: ranks share the inputs, outputs equal one process's,
and a rerun with --resume skips what is finished and completes what is not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from depthcore.errors import DepthcoreError
from depthcore.predict.shard import Shard, is_finished, output_files, shard_from_env
from tests.helpers.checkpoints import random_rgb
from tests.helpers.torchrun import torchrun

REPO = Path(__file__).resolve().parents[2]
N_IMAGES, BATCH = 5, 2  # 3 batches: rank 0 takes batches 0 and 2, rank 1 batch 1
OUTPUTS = ("npy", "png")


def test_batches_are_dealt_round_robin_and_cover_every_input_once() -> None:
    for n in (1, 5, 12):
        for world in (1, 2, 3):
            for size in (1, 2, 4):
                starts = [Shard(r, world).batch_starts(n, size) for r in range(world)]
                assert sorted(sum(starts, [])) == list(range(0, n, size))
                for r, mine in enumerate(starts):
                    assert all((s // size) % world == r for s in mine)


def test_shard_from_env_reads_torchrun_variables_and_refuses_bad_ones() -> None:
    assert shard_from_env({}) == Shard(0, 1, 0)
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == Shard(1, 2, 1)
    with pytest.raises(DepthcoreError, match="RANK=2 WORLD_SIZE=2"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(DepthcoreError, match="WORLD_SIZE='two'"):
        shard_from_env({"WORLD_SIZE": "two"})


def test_an_image_is_finished_only_with_all_its_files(tmp_path: Path) -> None:
    stem = tmp_path / "sub" / "img"
    stem.parent.mkdir()
    files = output_files(stem, OUTPUTS, scales=True, samples=2)
    assert [f.name for f in files] == [
        "img_depth.npy", "img_depth.png", "img_scales.png", "img_std.npy", "img_std.png",
    ]  # fmt: skip
    for f in files[:-1]:
        f.write_bytes(b"x")
    (stem.parent / ".img_std.png.tmp-123").write_bytes(b"half")  # a killed writer's temp
    assert not is_finished(stem, OUTPUTS, scales=True, samples=2)
    files[-1].write_bytes(b"x")
    assert is_finished(stem, OUTPUTS, scales=True, samples=2)


def _predict(cmd: list[str], inputs: Path, out: Path, checkpoint: Path, *extra: str) -> str:
    args = [
        "predict", "-q", str(inputs), "-o", str(out), "--model", str(checkpoint),
        "--device", "cpu", "--batch-size", str(BATCH), "--decoding", "sample",
        "--outputs", ",".join(OUTPUTS), *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    proc = subprocess.run(
        [*cmd, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict:
    """Inputs and the outputs of one plain process (sampled decoding: seeds matter)."""
    root = tmp_path_factory.mktemp("shard")
    inputs = root / "in"
    inputs.mkdir()
    for i in range(N_IMAGES):
        Image.fromarray(random_rgb(20 + 3 * i, 30 - 2 * i, seed=i)).save(inputs / f"im{i}.png")
    _predict([sys.executable, "-m", "depthcore.cli"], inputs, root / "one", tiny_checkpoint)
    return {"inputs": inputs, "out": root / "one", "files": _files(root / "one")}


def test_two_ranks_write_exactly_what_one_process_writes(
    one_process: dict, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    assert len(one_process["files"]) == N_IMAGES * len(OUTPUTS)
    err = _predict(
        torchrun(2, "depthcore.cli"), one_process["inputs"], tmp_path / "two", tiny_checkpoint
    )
    assert "rank 0/2: wrote depth for 3 of 3 images" in err
    assert "rank 1/2: wrote depth for 2 of 2 images" in err
    assert _files(tmp_path / "two") == one_process["files"]


def test_resume_skips_finished_batches_and_completes_the_rest(
    one_process: dict, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumed"
    shutil.copytree(one_process["out"], out)
    (out / "im2_depth.png").unlink()  # batch 1 (im2, im3) was cut off mid-image...
    (out / ".im2_depth.png.tmp-99999").write_bytes(b"half a png")  # ...while writing
    (out / "im4_depth.npy").unlink()  # and batch 2 (im4) had not finished either
    untouched = {p: p.stat().st_mtime_ns for p in out.glob("im[01]_*")}
    err = _predict(
        torchrun(2, "depthcore.cli"), one_process["inputs"], out, tiny_checkpoint, "--resume"
    )
    assert "(2 finished before, skipped)" in err  # rank 0: batch 0 skipped, batch 2 redone
    assert "rank 1/2: wrote depth for 2 of 2 images" in err
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched
    assert _files(out) == one_process["files"]  # the temp file is gone, every file whole
