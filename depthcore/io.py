"""Atomic file and folder writes: a stage never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from depthcore.errors import DiskFullError, disk_full


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto ``path``.

    Works for files and folders. On an exception the temporary is removed and
    the previous ``path`` (if any) is left untouched; running out of space
    (ENOSPC) becomes a :class:`~depthcore.errors.DiskFullError` naming ``path``.
    Leftovers of a writer that was killed (``kill -9``) are cleaned up first,
    and a previous version that such a writer had moved aside is put back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            _remove(old)
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise disk_full(path, exc) from exc
        raise
    finally:
        _remove(tmp)


def is_disk_full(exc: OSError) -> bool:
    """ENOSPC, also where a library (HDF5) kept only the message and dropped the errno."""
    return exc.errno == errno.ENOSPC or "No space left on device" in str(exc)


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
    found = []
    for kind in ("old", "tmp"):  # old first: it may be the only copy left
        for left in path.parent.glob(f".{glob.escape(path.name)}.{kind}-*"):
            pid = left.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or _pid_alive(int(pid)):
                continue
            if kind == "old" and not path.exists():
                os.replace(left, path)
            else:
                _remove(left)
            found.append(left)
    return found


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
