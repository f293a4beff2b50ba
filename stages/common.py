"""The common entry point of the pipeline stages (``python -m stages.<name>``).

A stage parses ``--params`` (default ``params.yaml``), runs, and exits non-zero
on any failure, printed as one clear line by the shared boundary
:func:`depthcore.errors.run_guarded` (the traceback too with ``--debug`` or
``DEPTHCORE_DEBUG=1``). Nothing is swallowed.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from depthcore.errors import DEBUG_ENV, run_guarded


def stage_args(
    description: str,
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """Parse the arguments every stage takes, plus the ``extra`` ones a stage adds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="params file (default: params.yaml)",
    )
    parser.add_argument("--debug", action="store_true", help="print tracebacks of failures")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.debug:  # read by run_stage's boundary, and inherited by worker processes
        os.environ[DEBUG_ENV] = "1"
    return args


def run_stage(name: str, body: Callable[[], object], debug: bool = False) -> None:
    """Run ``body`` as stage ``name``; on any failure exit 1 after one ``error:`` line."""
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", force=True)

    def call() -> None:
        body()

    status = run_guarded(f"stage {name} failed", call, debug)
    if status:
        raise SystemExit(status)
