"""depthcore.io.atomic_path under a full disk and after a writer killed mid-write."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from depthcore.errors import DiskFullError
from depthcore.io import atomic_path, recover_interrupted
from depthcore.models import checkpoint, create_model, resolve_config


def _dead_pid() -> int:
    """The id of a process that has exited (so its leftovers count as abandoned)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_enospc_keeps_previous_file_and_says_disk_full(tmp_path: Path) -> None:
    target = tmp_path / "stats.csv"
    target.write_text("old\n")
    with (
        pytest.raises(DiskFullError, match=r"stats\.csv: disk full while writing") as info,
        atomic_path(target) as tmp,
    ):
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "stats.csv"
    ]


def test_enospc_while_saving_a_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    vae, var = create_model("tiny")
    path = tmp_path / "model.safetensors"
    checkpoint.save_model(path, vae, var, resolve_config("tiny"), meta={"steps": "1"})
    before = path.read_bytes()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(DiskFullError, match="disk full"):
        checkpoint.save_model(path, vae, var, resolve_config("tiny"), meta={"steps": "2"})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_killed_folder_swap_is_undone(tmp_path: Path) -> None:
    """A writer killed between moving the old folder aside and moving the new one in
    leaves only ``.out.old-PID``: the next writer puts it back first, drops the temp."""
    pid = _dead_pid()
    old = tmp_path / f".out.old-{pid}"
    old.mkdir()
    (old / "a.txt").write_text("previous")
    (tmp_path / f".out.tmp-{pid}").mkdir()
    (tmp_path / f".out.tmp-{pid}" / "a.txt").write_text("half-written")
    assert len(recover_interrupted(tmp_path / "out")) == 2
    assert (tmp_path / "out" / "a.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_live_writers_leftovers_are_not_touched(tmp_path: Path) -> None:
    mine = tmp_path / f".out.tmp-{os.getpid()}"
    mine.write_text("in progress")
    assert recover_interrupted(tmp_path / "out") == [] and mine.exists()
