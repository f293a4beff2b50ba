"""Real write failures and real signals end a stage cleanly.

A full disk is a real small tmpfs (skipped where it cannot be mounted), a file size
limit is RLIMIT_FSIZE set in the child (SIGXFSZ ignored, so write() returns EFBIG as
under ``ulimit -f``); HDF5 (the preprocess stage), safetensors and PNG writers each
hit it. Every case: exit 1, one ``error:`` line naming the output, no traceback, no
segfault, no temporary left, the previous output intact. SIGTERM / SIGINT reach the
preprocess stage with worker processes and ``depthart predict``: workers stopped,
temporaries removed, every output whole or absent, exit 128+signal; a rerun completes.
"""

from __future__ import annotations

import contextlib
import glob
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers.checkpoints import random_rgb
from tests.helpers.reliability.crash_runs import REPO, leftovers, stage_env, tree_digest
from tests.reliability.conftest import preprocess_run

# Writes one safetensors checkpoint or one 16-bit PNG through the library's atomic
# writers, behind the same boundary as every stage (run_guarded).
WRITER = """
import sys, numpy as np, torch
from depthcore.errors import run_guarded
kind, path = sys.argv[1], sys.argv[2]
def body():
    if kind == "safetensors":
        from depthcore.models import checkpoint, create_model, resolve_config
        torch.manual_seed(0)
        vae, var = create_model("tiny")
        checkpoint.save_model(path, vae, var, resolve_config("tiny"), meta={"steps": "1"})
    else:
        from depthcore import viz
        viz.save_depth_png16(path, np.random.default_rng(0).random((400, 400)) + 1.0)
sys.exit(run_guarded("write", body))
"""


def _fsize_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _write(
    kind: str, path: Path, preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WRITER, kind, str(path)],
        env=stage_env(), capture_output=True, text=True, timeout=300, preexec_fn=preexec_fn,
    )  # fmt: skip


def _one_clean_error(proc: subprocess.CompletedProcess, path: Path, reason: str) -> None:
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("[")]
    assert proc.returncode == 1, (proc.returncode, proc.stderr)  # not -11 (segfault)
    assert len(errors) == 1, proc.stderr
    assert str(path) in errors[0] and reason in errors[0], errors[0]
    for noise in ("Traceback", "Exception ignored", "unexpected", "HDF5-DIAG"):
        assert noise not in proc.stderr


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    """A real tmpfs of ``size_kb`` at ``path`` (skip the test where mounting is not allowed)."""
    path.mkdir()
    opts = f"size={size_kb}k"
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def _shrink(path: Path, free_kb: int) -> None:
    """Leave only ``free_kb`` free on the tmpfs at ``path``."""
    st = os.statvfs(path)
    used_kb = (st.f_blocks - st.f_bfree) * st.f_frsize // 1024
    subprocess.run(["mount", "-o", f"remount,size={used_kb + free_kb}k", str(path)], check=True)


def test_full_disk_hdf5_stage(raw: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", 8192) as disk:
        out = disk / "processed"
        first = preprocess_run(tmp_path, raw, out)
        assert first.returncode == 0, first.stderr
        before = tree_digest(out)
        _shrink(disk, 64)  # the output needs several times that
        proc = preprocess_run(tmp_path, raw, out, resolution=[64, 64])
        _one_clean_error(proc, out, "disk full")
        assert tree_digest(out) == before and leftovers(out) == []
        _shrink(disk, 8192)
        assert preprocess_run(tmp_path, raw, out).returncode == 0  # space freed: rerun completes


def test_file_size_limit_hdf5_stage(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "processed"
    assert preprocess_run(tmp_path, raw, out).returncode == 0
    before = tree_digest(out)
    proc = preprocess_run(tmp_path, raw, out, preexec_fn=_fsize_limit(20_000), workers=2)
    _one_clean_error(proc, out, "file size limit")
    assert tree_digest(out) == before and leftovers(out) == []


@pytest.mark.parametrize("kind", ["safetensors", "png"])
def test_full_disk_and_size_limit_writers(kind: str, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", 64) as disk:
        target = disk / f"out.{kind}"
        target.write_bytes(b"previous")
        _one_clean_error(_write(kind, target), target, "disk full")
        assert target.read_bytes() == b"previous" and [p.name for p in disk.iterdir()] == [
            target.name
        ]
    target = tmp_path / f"out.{kind}"
    target.write_bytes(b"previous")
    _one_clean_error(_write(kind, target, _fsize_limit(20_000)), target, "file size limit")
    assert target.read_bytes() == b"previous" and leftovers(target) == []


def _signal_when(
    cmd: list[str], cwd: Path, ready: str, sig: int, group: bool
) -> tuple[subprocess.CompletedProcess, list[int]]:
    """Start ``cmd``, wait until a file matching ``ready`` exists, send ``sig`` (to the whole
    process group, as Ctrl-C does, when ``group``); returns the result and the children it had."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=stage_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not glob.glob(str(cwd / ready)) and proc.poll() is None:
        assert time.monotonic() < deadline, "never reached the point to signal"
        time.sleep(0.01)
    children = [
        int(p)
        for p in subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    assert proc.poll() is None, "finished before the signal: nothing was tested"
    os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), children


def _gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(Path(f"/proc/{p}").exists() for p in pids)


@pytest.mark.parametrize(("sig", "group"), [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_signal_stops_preprocess_and_its_workers(
    raw: Path, tmp_path: Path, sig: int, group: bool
) -> None:
    out = tmp_path / "processed"
    # frames large enough that the stage is still working when the signal lands, even on a
    # machine busy with other tests (at 192 px it once finished first, under pytest-xdist)
    section = {"resolution": [384, 384], "workers": 2, "shard_size": 2}
    assert preprocess_run(tmp_path, raw, out, **section).returncode == 0
    before = tree_digest(out)
    cmd = [sys.executable, "-m", "stages.preprocess", "--params", "params.yaml"]
    proc, children = _signal_when(cmd, tmp_path, ".processed.tmp-*/*/shard_*.h5", sig, group)
    assert proc.returncode == 128 + sig, proc.stderr
    assert f"interrupted ({signal.Signals(sig).name})" in proc.stderr
    assert "Traceback" not in proc.stderr and len(children) == 2 and _gone(children)
    assert tree_digest(out) == before and leftovers(out) == []  # previous output whole
    assert preprocess_run(tmp_path, raw, out, **section).returncode == 0
    assert tree_digest(out) == before


def test_sigterm_to_predict_leaves_whole_outputs(tmp_path: Path, tiny_checkpoint: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(16):
        Image.fromarray(random_rgb(64, 64, seed=i)).save(photos / f"img{i:02d}.png")
    cmd = [
        sys.executable, "-m", "depthcore.cli", "predict", str(photos), "-o", "out", "-q",
        "--device", "cpu", "--batch-size", "1", "--model", str(tiny_checkpoint), "--ply",
    ]  # fmt: skip
    proc, _ = _signal_when(cmd, tmp_path, "out/img00_depth_color.png", signal.SIGTERM, False)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert "interrupted (SIGTERM)" in proc.stderr and "Traceback" not in proc.stderr
    suffixes = ("_depth.npy", "_depth.png", "_depth_color.png", ".ply")
    out = tmp_path / "out"
    for i in range(16):
        have = [(out / f"img{i:02d}{s}").is_file() for s in suffixes]
        assert all(have) or not any(have), (i, have)  # each image: all of its files or none
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries
    rerun = subprocess.run(
        cmd, cwd=tmp_path, env=stage_env(), capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0 and "wrote depth for 16 of 16" in rerun.stderr, rerun.stderr
    assert REPO.is_dir()
