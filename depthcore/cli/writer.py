"""Writing ``depthart predict``'s outputs while the next batch runs: a bounded writer pool.

Encoding the 16-bit PNG, the colour PNG and the ``.npy`` of every image serially after
each batch made the command several times slower than the model (issue 28); PNG
compression and numpy release the GIL, so a few threads overlap it with the next
batch. What the serial loop guaranteed still holds:

* each image gets all of its files or none (a failed or interrupted image's new files are
  removed; every file is atomic, see :func:`depthcore.io.atomic_path`);
* an ``OSError`` fails that image only, any other exception (and SIGTERM/Ctrl-C) ends
  the run after the pool has stopped, so no thread writes behind the caller's back;
* results are reported in submission order, whatever order the threads finish in;
* memory stays bounded: :meth:`OutputWriter.submit` waits once more than ``max_pending``
  images are queued (the CLI allows one batch: one batch written while the next runs).

``workers=0`` writes in the caller's thread, exactly the old serial path.
"""

from __future__ import annotations

import argparse
import collections
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Generic, TypeVar

K = TypeVar("K")  # what the caller knows a job by (the CLI: its order and source)

#: Threads by default: enough to overlap PNG/npy writing with the model on small CPUs.
DEFAULT_WRITERS = max(1, min(4, os.cpu_count() or 1))


def writer_count(text: str) -> int:
    """An argparse type for ``--writers``: a whole number >= 0 (0: no threads)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 writes in the main thread), got {value}")
    return value


def write_all_or_none(files: Iterable[Path], write: Callable[[], None]) -> None:
    """Run ``write``; if it raises, remove those of ``files`` it created, then re-raise.

    ``files`` is the image's exact list of outputs (not a glob of its stem: ``img1*``
    would also match ``img10``'s files, written at the same time by another thread).
    """
    files = list(files)
    before = {path for path in files if path.exists()}
    try:
        write()
    except BaseException:
        for partial in files:
            if partial not in before:
                partial.unlink(missing_ok=True)
        raise


class OutputWriter(Generic[K]):
    """Runs per-image write jobs on ``workers`` threads; :meth:`submit` returns the jobs
    that finished, oldest first, as ``(key, error)`` with ``error`` None or an ``OSError``."""

    def __init__(self, workers: int, max_pending: int) -> None:
        self._pool = ThreadPoolExecutor(workers, "depthart-writer") if workers > 0 else None
        self._max_pending = max(1, max_pending)
        self._pending: collections.deque[tuple[K, Future[None]]] = collections.deque()

    def submit(
        self, key: K, files: Iterable[Path], write: Callable[[], None]
    ) -> list[tuple[K, OSError | None]]:
        """Queue one image's writes; returns the finished jobs in submission order."""
        files = list(files)
        if self._pool is None:
            return [(key, _outcome(lambda: write_all_or_none(files, write)))]
        self._pending.append((key, self._pool.submit(write_all_or_none, files, write)))
        done = []
        while len(self._pending) > self._max_pending or (
            self._pending and self._pending[0][1].done()
        ):
            done.append(self._resolve())
        return done

    def drain(self) -> list[tuple[K, OSError | None]]:
        """Wait for every queued job; their outcomes in submission order."""
        return [self._resolve() for _ in range(len(self._pending))]

    def close(self) -> None:
        """Stop the pool: jobs not started are dropped, running ones finish (or abort at
        their next commit after a signal, removing their files) before this returns."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()

    def _resolve(self) -> tuple[K, OSError | None]:
        key, future = self._pending.popleft()
        return key, _outcome(future.result)


def _outcome(call: Callable[[], object]) -> OSError | None:
    """None if ``call`` succeeded, its ``OSError`` if it failed so (the image failed);
    anything else propagates (a bug, SIGTERM or Ctrl-C ends the run)."""
    try:
        call()
    except OSError as exc:
        return exc
    return None
