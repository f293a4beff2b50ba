"""Error types whose message is meant for the user, and the one boundary that prints them.

Every entry point (the ``depthart`` command, each ``python -m stages.<name>``) runs
its body through :func:`run_guarded`: a failure becomes one ``error:`` line on
stderr and a non-zero exit status. A traceback is for developers: it is printed
only with ``--debug`` or ``DEPTHCORE_DEBUG=1``, so a user never has to read one to
learn which file or key was wrong.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Callable

DEBUG_ENV = "DEPTHCORE_DEBUG"


class DepthcoreError(Exception):
    """An error with a complete, user-readable message (file and problem named)."""


class DataError(DepthcoreError, ValueError):
    """Bad input data: a missing, truncated or malformed file, or a wrong-shaped array."""


class CheckpointError(DepthcoreError, ValueError):
    """A checkpoint that cannot be loaded safely or does not match its config."""


class DiskFullError(DepthcoreError, OSError):
    """A write that ran out of space (ENOSPC); the previous output was left as it was."""


def disk_full(path: object, exc: OSError) -> DiskFullError:
    """The :class:`DiskFullError` for an ENOSPC raised while writing ``path``."""
    return DiskFullError(
        errno.ENOSPC,
        f"{path}: disk full while writing; the previous version (if any) is unchanged. "
        f"Free some space and rerun ({exc.strerror or exc})",
    )


def debug_enabled(flag: bool = False) -> bool:
    """True when tracebacks were asked for (``--debug`` or ``DEPTHCORE_DEBUG`` set non-zero)."""
    return flag or os.environ.get(DEBUG_ENV, "") not in ("", "0", "false", "no")


def describe(exc: BaseException) -> str:
    """The one-line message for ``exc``: its own text for ours, the type added for others."""
    if isinstance(exc, DiskFullError):
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


def run_guarded(prefix: str, body: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``body`` and return its exit status; any failure is printed as one
    ``error: <prefix>: ...`` line (plus the traceback in debug mode) and gives 1
    (130 for Ctrl-C). Nothing is swallowed: the failure always reaches the exit status."""
    try:
        status = body()
    except KeyboardInterrupt:
        print(f"error: {prefix}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the entry point boundary: every failure ends here
        if debug_enabled(debug):
            traceback.print_exc()
        print(f"error: {prefix}: {describe(exc)}", file=sys.stderr)
        return 1
    return 0 if status is None else int(status)
