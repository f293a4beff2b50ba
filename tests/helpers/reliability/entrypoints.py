"""The contract every entry point keeps with a bad input, and a runner that checks it.

A case fails cleanly when the exit status is non-zero, stderr has exactly one ``error:``
line and it names the file or key, there is no traceback, and what must hold afterwards
(no partial output; in a batch, the good items written) holds. Cases run in-process
with stderr captured; the log handlers a stage installs are removed after each.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Case:
    """One bad input: how to run it, what its one error line must name, and what else
    must hold afterwards (no partial output, the good batch items written)."""

    kind: str
    name: str
    run: Callable[[], int | None]
    names: str
    after: Callable[[], bool] = lambda: True
    expect_ok: bool = False  # a bad item the stage must absorb (e.g. drop the frame)


@dataclass
class Outcome:
    case: Case
    status: int
    errors: list[str]
    traceback: bool
    after_ok: bool
    seconds: float

    @property
    def clean(self) -> bool:
        if self.case.expect_ok:
            return self.status == 0 and not self.traceback and self.after_ok
        return (
            self.status != 0
            and len(self.errors) == 1
            and self.case.names in self.errors[0]
            and not self.traceback
            and self.after_ok
        )


def run_case(case: Case) -> Outcome:
    """Run ``case`` in-process with stderr captured (and the log handlers restored)."""
    buf = io.StringIO()
    handlers = logging.root.handlers[:]
    start = time.monotonic()
    with contextlib.redirect_stderr(buf):
        try:
            status = case.run() or 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
    logging.root.handlers[:] = handlers
    err = buf.getvalue()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    return Outcome(case, status, errors, "Traceback" in err, case.after(), time.monotonic() - start)
