"""Error types whose message is meant for the user, and the one boundary that prints them.

Every entry point (the ``depthart`` command, each ``python -m stages.<name>``) runs
its body through :func:`run_guarded`: a failure becomes one ``error:`` line on
stderr and a non-zero exit status. A traceback is for developers: it is printed
only with ``--debug`` or ``DEPTHCORE_DEBUG=1``, so a user never has to read one to
learn which file or key was wrong.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from types import FrameType

DEBUG_ENV = "DEPTHCORE_DEBUG"


class DepthcoreError(Exception):
    """An error with a complete, user-readable message (file and problem named)."""


class DataError(DepthcoreError, ValueError):
    """Bad input data: a missing, truncated or malformed file, or a wrong-shaped array."""


class CheckpointError(DepthcoreError, ValueError):
    """A checkpoint that cannot be loaded safely or does not match its config."""


class DiskFullError(DepthcoreError, OSError):
    """A write that ran out of space (ENOSPC); the previous output was left as it was."""


class WriteError(DepthcoreError, OSError):
    """A write that failed at the operating system (file size limit, quota, I/O error);
    the previous output was left as it was."""


# errno -> what the user can do about it; a library may keep only the text ("os error 27")
_WRITE_FAILURES = {
    errno.ENOSPC: ("No space left on device", "disk full"),
    errno.EFBIG: ("File too large", "file size limit reached (ulimit -f)"),
    errno.EDQUOT: ("Disk quota exceeded", "disk quota exceeded"),
}


def write_failure(exc: BaseException) -> int | None:
    """The errno of a full disk / file size limit / quota failure, also where a library
    (HDF5, safetensors) kept only the message; None for anything else."""
    if isinstance(exc, OSError) and exc.errno in _WRITE_FAILURES:
        return exc.errno
    text = str(exc)
    for code, (strerror, _) in _WRITE_FAILURES.items():
        if strerror in text or f"os error {code})" in text:
            return code
    return None


def disk_full(path: object, exc: BaseException) -> DiskFullError | WriteError:
    """The one-line error for a full disk (:class:`DiskFullError`), a file size limit or
    a quota (:class:`WriteError`) hit while writing ``path``; the library's own text (HDF5
    puts several lines of detail there) is reduced to the reason."""
    code = write_failure(exc) or errno.ENOSPC
    reason = _WRITE_FAILURES[code][1]
    if code == errno.ENOSPC:
        return DiskFullError(
            code,
            f"{path}: disk full while writing; the previous version (if any) is unchanged. "
            "Free some space and rerun",
        )
    return WriteError(
        code, f"{path}: {reason} while writing; the previous version (if any) is unchanged"
    )


def debug_enabled(flag: bool = False) -> bool:
    """True when tracebacks were asked for (``--debug`` or ``DEPTHCORE_DEBUG`` set non-zero)."""
    return flag or os.environ.get(DEBUG_ENV, "") not in ("", "0", "false", "no")


def describe(exc: BaseException) -> str:
    """The one-line message for ``exc``: its own text for ours, the type added for others."""
    if isinstance(exc, DiskFullError | WriteError):
        return str(exc.strerror)
    if isinstance(exc, DepthcoreError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"disk full: {exc}"
    detail = str(exc) or "(no message)"
    return (
        f"unexpected {type(exc).__name__}: {detail} "
        f"(rerun with --debug or {DEBUG_ENV}=1 for the traceback)"
    )


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) received: unwinds like Ctrl-C, so every ``finally`` (temporary
    outputs removed, worker processes stopped) runs before the process exits 128+signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# Signals received while signals_unwind was active (read by check_interrupted).
_RECEIVED: list[int] = []


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    _RECEIVED.append(signum)
    code = frame.f_code if frame is not None else None
    if code is not None and (code.co_name == "__del__" or code.co_filename.endswith("weakref.py")):
        return  # Python would print and drop it there; check_interrupted raises it soon
    raise Interrupted(signum)


def check_interrupted() -> None:
    """Raise :class:`Interrupted` if a signal arrived, even one whose exception was
    swallowed (Python ignores exceptions raised in finalisers and weakref callbacks, and
    the signal handler may have run in one): called before an output is committed."""
    if _RECEIVED:
        raise Interrupted(_RECEIVED[-1])


def interrupted() -> bool:
    """Whether SIGTERM / SIGINT arrived during the current :func:`signals_unwind`."""
    return bool(_RECEIVED)


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """While active (main thread only), SIGTERM raises :class:`Interrupted` instead of
    killing the process at once, which would leave temporaries and orphaned workers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _RECEIVED.clear()
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    previous_int = signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        yield
        check_interrupted()  # a signal whose exception was swallowed still fails the run
    except Exception as exc:
        if _RECEIVED:  # a library turned the signal's exception into its own (h5py: a
            # TypeError from the HDF5 call it landed in); the run was still stopped by it
            raise Interrupted(_RECEIVED[-1]) from exc
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        _RECEIVED.clear()  # the caller has the exception; later library calls start clean


def run_guarded(prefix: str, body: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``body`` and return its exit status; any failure is printed as one
    ``error: <prefix>: ...`` line (plus the traceback in debug mode) and gives 1
    (128+signal for SIGINT/Ctrl-C and SIGTERM, after the cleanup on the way up).
    Nothing is swallowed: the failure always reaches the exit status."""
    try:
        with signals_unwind():
            status = body()
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        name = signal.Signals(signum).name
        print(f"error: {prefix}: interrupted ({name}); rerun to complete", file=sys.stderr)
        return 128 + signum
    except Exception as exc:  # noqa: BLE001 - the entry point boundary: every failure ends here
        if debug_enabled(debug):
            traceback.print_exc()
        # one line, also when a library put its own line breaks in the text (HDF5 does)
        print(f"error: {prefix}: {' '.join(describe(exc).split())}", file=sys.stderr)
        return 1
    return 0 if status is None else int(status)
