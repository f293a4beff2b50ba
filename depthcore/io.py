"""Atomic file and folder writes: a stage never leaves a half-written output behind,
and never deletes or overwrites what it reads.

Two rules guard the replace (docs/reliability.md):

* an output path equal to, inside or containing a protected input (see
  :func:`protected_inputs`; symlinks resolved) is refused before anything is written;
* an existing folder is replaced only when it is our own previous output, recognised
  by the :data:`MARKER` file every folder written here carries (or when it is empty):
  a foreign folder is refused, never deleted.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from depthcore.errors import DepthcoreError, check_interrupted, disk_full, write_failure

# Written into every folder atomic_path produces: the proof that a later run may replace it.
MARKER = ".depthcore-output"
_MARKER_TEXT = "written by depthcore (depthcore.io.atomic_path); a rerun may replace this folder\n"
# (name, resolved path) of the inputs the running stage reads; see protected_inputs.
_PROTECTED: list[tuple[str, Path]] = []
# Handles whose close failed (HDF5 after a failed write): never finalised, see close_or_keep.
_UNCLOSED: list[object] = []
# Inside leftovers_listed_once: folder -> {target name: its leftovers}, one listing per folder.
_LISTED: dict[Path, dict[str, list[Path]]] | None = None
_LISTED_LOCK = threading.Lock()
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?:old|tmp)-[0-9]+", re.DOTALL)  # .NAME.tmp-PID


class UnsafeOutputError(DepthcoreError):
    """An output path that would delete or overwrite an input or a foreign folder."""


@contextlib.contextmanager
def protected_inputs() -> Iterator[None]:
    """A scope (one stage run) whose :func:`protect` calls are undone when it ends."""
    saved = list(_PROTECTED)
    try:
        yield
    finally:
        _PROTECTED[:] = saved


def protect(name: str, path: str | Path) -> None:
    """Refuse, until the enclosing :func:`protected_inputs` ends, any atomic write that
    would replace ``path`` (named ``name`` in the message), a folder inside it or one
    containing it."""
    _PROTECTED.append((name, Path(path).resolve()))


def overlap(out: str | Path, inp: str | Path) -> str | None:
    """How output ``out`` overlaps input ``inp`` ("is", "is inside", "contains"), or None.

    Both are resolved first, so a symlink to the input counts as the input.
    """
    a, b = Path(out).resolve(), Path(inp).resolve()
    if a == b:
        return "is"
    if a.is_relative_to(b):
        return "is inside"
    if b.is_relative_to(a):
        return "contains"
    return None


def refuse_overlaps(
    outputs: dict[str, Path], inputs: dict[str, Path], *, containing: bool = True
) -> None:
    """Raise :class:`UnsafeOutputError` for the first output that overlaps an input.

    ``containing=False`` allows an output folder that merely contains an input (a
    stage writing ``models/<name>`` next to the ``models/pretrain`` it reads); the
    replace of the actual path is checked again by :func:`atomic_path`.
    """
    for out_name, out in outputs.items():
        for in_name, inp in inputs.items():
            how = overlap(out, inp)
            if how is None or (how == "contains" and not containing):
                continue
            raise UnsafeOutputError(
                f"{out_name} {out} {how} the input {in_name} {inp}: refusing to write "
                "where it would delete or overwrite what is read; choose another output path"
            )


def _check_replaceable(path: Path, owned: Callable[[Path], bool] | None) -> None:
    """Refuse replacing a protected input or a foreign (unmarked, non-empty) folder."""
    refuse_overlaps({"output": path}, dict(_PROTECTED))
    if not path.is_dir() or path.is_symlink() or not any(path.iterdir()):
        return
    if owned is not None and not owned(path):
        raise UnsafeOutputError(
            f"{path}: the output folder exists and holds files this writer does not make; "
            "refusing to replace it. Move or delete it yourself, or choose another output path"
        )
    if owned is None and not (path / MARKER).is_file():
        raise UnsafeOutputError(
            f"{path}: the output folder exists and was not written by depthcore (no "
            f"{MARKER} marker); refusing to replace it. Move or delete it yourself, "
            "or choose another output path"
        )


@contextlib.contextmanager
def atomic_path(path: str | Path, owned: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto ``path``.

    Works for files and folders. On an exception the temporary is removed and
    the previous ``path`` (if any) is left untouched; running out of space
    (ENOSPC) becomes a :class:`~depthcore.errors.DiskFullError` naming ``path``.
    Leftovers of a writer that was killed (``kill -9``) are cleaned up first,
    and a previous version that such a writer had moved aside is put back.
    A folder written here gets the :data:`MARKER` file; an existing folder without
    it (someone else's), or a protected input, raises :class:`UnsafeOutputError`
    before anything is written. ``owned`` is for a folder that must hold nothing but
    its own files (a DVC metrics folder, where DVC would read the marker as one more
    metrics file): no marker is written, and an existing folder is replaced only when
    ``owned(folder)`` says it holds only what this writer makes.
    """
    path = Path(path)
    _check_replaceable(path, owned)
    path.parent.mkdir(parents=True, exist_ok=True)
    _recover_before_write(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_dir() and not tmp.is_symlink() and owned is None:
            (tmp / MARKER).write_text(_MARKER_TEXT)
        _check_replaceable(path, owned)  # the body may have run for hours: check again
        check_interrupted()  # never commit an output after SIGTERM / Ctrl-C
        if path.is_dir() != tmp.is_dir() and path.exists():
            kind = "folder" if path.is_dir() else "file"
            raise UnsafeOutputError(f"{path}: exists as a {kind}; refusing to replace it")
        if path.is_dir() and tmp.is_dir():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            _remove(old)
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    except Exception as exc:
        if write_failure(exc) is not None and not isinstance(exc, DepthcoreError):
            raise disk_full(path, exc) from exc
        raise
    finally:
        _remove(tmp)


def close_or_keep(handle: Any, *parts: Any) -> None:
    """Close ``handle``; if closing fails, keep it and its ``parts`` (its datasets) for ever.

    After a failed write (full disk, file size limit) HDF5 cannot close the file, and
    h5py finalising such objects later prints "Exception ignored" tracebacks and can
    crash the process (SIGSEGV). Kept referenced here they are never finalised: the
    entry point reports the error and ends with :func:`os._exit` when
    :func:`unclosed_handles` is non-zero. The close error is raised.
    """
    try:
        # flush first: closing an HDF5 file whose flush fails can itself crash h5py
        flush = getattr(handle, "flush", None)
        if flush is not None:
            flush()
        handle.close()
    except BaseException:
        _UNCLOSED.extend((handle, *parts))
        raise


def keep_unfinalised(*objects: Any) -> None:
    """Never finalise ``objects`` (a process pool whose workers were killed mid-message:
    its threads would hang the interpreter's exit); the stage exits with os._exit."""
    _UNCLOSED.extend(objects)


def unclosed_handles() -> int:
    """How many objects must never be finalised (the process exits without finalisers)."""
    return len(_UNCLOSED)


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC, also where a library (HDF5) kept only the message and dropped the errno."""
    return write_failure(exc) == errno.ENOSPC


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def recover_interrupted(path: str | Path) -> list[Path]:
    """Clean up after an :func:`atomic_path` writer of ``path`` that died mid-write.

    Its ``.NAME.tmp-PID`` is removed; its ``.NAME.old-PID`` (the previous version,
    moved aside during a folder swap) is renamed back when ``path`` is missing, else
    removed. Only leftovers of processes that no longer run are touched. Returns
    the leftovers handled.
    """
    path = Path(path)
    name = glob.escape(path.name)
    lefts = [p for kind in ("old", "tmp") for p in path.parent.glob(f".{name}.{kind}-*")]
    return _recover(path, lefts)


def _recover(path: Path, lefts: list[Path]) -> list[Path]:
    """:func:`recover_interrupted` of ``path`` given its candidate leftovers."""
    found = []
    # ".old-" or ".tmp-": what follows ".NAME" in the leftover's name
    kinds = {left: left.name[len(path.name) + 1 : len(path.name) + 6] for left in lefts}
    for left in sorted(lefts, key=lambda p: kinds[p] != ".old-"):  # old first: maybe the only copy
        pid = left.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        if kinds[left] == ".old-" and not path.exists():
            os.replace(left, path)
        else:
            _remove(left)
        found.append(left)
    return found


@contextlib.contextmanager
def leftovers_listed_once() -> Iterator[None]:
    """While active, each folder is listed once for leftovers of killed writers, at the
    first :func:`atomic_path` write into it, instead of at every write.

    :func:`recover_interrupted` lists the whole folder, so a command writing thousands of
    files into one folder (``depthart predict`` on a photo library) made each write cost
    O(files already there): 39 ms per write at 30,000 files. Here each write looks up only
    its own name's leftovers from that one listing, so the same files are cleaned up as
    before; leftovers of a writer killed after the listing are left to the next run. For
    all threads of the process (the CLI's writer threads).
    """
    global _LISTED
    with _LISTED_LOCK:
        outer, _LISTED = _LISTED, ({} if _LISTED is None else _LISTED)
    try:
        yield
    finally:
        with _LISTED_LOCK:
            _LISTED = outer


def _recover_before_write(path: Path) -> None:
    with _LISTED_LOCK:
        listed = _LISTED
        if listed is not None:
            table = listed.get(path.parent)
            if table is None:
                table = listed[path.parent] = _leftovers_by_name(path.parent)
            lefts = table.pop(path.name, [])
    if listed is None:
        recover_interrupted(path)
    else:
        _recover(path, lefts)


def _leftovers_by_name(folder: Path) -> dict[str, list[Path]]:
    """The ``.NAME.old-PID`` / ``.NAME.tmp-PID`` entries of ``folder`` by NAME, one listing."""
    table: dict[str, list[Path]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            match = _LEFTOVER.fullmatch(entry.name)
            if match is not None:
                table.setdefault(match["name"], []).append(folder / entry.name)
    return table


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def file_sha256(path: str | Path) -> str:
    """Content hash of a file, read in 1 MiB blocks: the identity of a checkpoint or cache input."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
