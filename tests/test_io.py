"""depthcore.io.atomic_path under a full disk and after a writer killed mid-write."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from depthcore import io
from depthcore.errors import DiskFullError
from depthcore.io import atomic_path, leftovers_listed_once, recover_interrupted, write_bytes_atomic
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


def test_listed_once_cleans_what_each_write_would_and_nothing_else(tmp_path: Path) -> None:
    """Inside leftovers_listed_once a write still removes its own name's dead leftovers and
    undoes a killed folder swap; other names' leftovers and live writers' stay."""
    dead, live = _dead_pid(), os.getpid()
    for name in (f".a.png.tmp-{dead}", f".b.png.tmp-{dead}", f".c.png.tmp-{live}"):
        (tmp_path / name).write_bytes(b"half")
    old = tmp_path / f".out.old-{dead}"  # our previous output, moved aside by a killed swap
    old.mkdir()
    (old / "x.txt").write_text("previous")
    (old / io.MARKER).write_text("written by depthcore")
    with leftovers_listed_once():
        write_bytes_atomic(tmp_path / "a.png", b"new a")
        with atomic_path(tmp_path / "out") as tmp:  # the swap: the old copy comes back first
            assert (tmp_path / "out" / "x.txt").read_text() == "previous"
            tmp.mkdir()
            (tmp / "x.txt").write_text("new")
    names = sorted(p.name for p in tmp_path.iterdir())
    # b.png was not written: its leftover is not ours to judge; c's writer (this process) lives
    assert names == [f".b.png.tmp-{dead}", f".c.png.tmp-{live}", "a.png", "out"]
    assert (tmp_path / "out" / "x.txt").read_text() == "new"


def test_listed_once_lists_each_folder_once(tmp_path: Path, monkeypatch) -> None:
    """Without the scope every atomic write lists its whole folder (quadratic over a photo
    library); inside it one listing serves every write into that folder."""
    listings: list[str] = []
    scandir = os.scandir

    def counting(path=".", *args, **kwargs):  # glob's listing goes through os.scandir too
        listings.append(str(path))
        return scandir(path, *args, **kwargs)

    monkeypatch.setattr(io.os, "scandir", counting)
    for i in range(20):
        write_bytes_atomic(tmp_path / "plain" / f"{i}.png", b"x")
    assert len(listings) >= 20
    listings.clear()
    with leftovers_listed_once():
        for i in range(20):
            write_bytes_atomic(tmp_path / "scoped" / f"{i}.png", b"x")
            write_bytes_atomic(tmp_path / "scoped" / "sub" / f"{i}.png", b"x")
    assert sorted(listings) == [str(tmp_path / "scoped"), str(tmp_path / "scoped" / "sub")]
    listings.clear()
    write_bytes_atomic(tmp_path / "scoped" / "after.png", b"x")  # the scope has ended
    assert listings
