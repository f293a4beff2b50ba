"""The common entry point of the pipeline stages (``python -m stages.<name>``).

A stage parses ``--params`` (default ``params.yaml``), runs, and exits non-zero
on any failure. Expected failures (:class:`DepthcoreError`, config errors) are
printed as one clear line; anything else keeps its traceback. Nothing is
swallowed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from depthcore.config import ConfigError
from depthcore.errors import DepthcoreError


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
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


def run_stage(name: str, body: Callable[[], object]) -> None:
    """Run ``body`` as stage ``name``; exit 1 with a one-line message on a known failure."""
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", force=True)
    try:
        body()
    except (DepthcoreError, ConfigError) as exc:
        print(f"error: stage {name} failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
