"""The ``depthart export`` subcommand (kept apart from :mod:`depthcore.cli`'s predict code)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthcore.export.manifest import read_manifest
from depthcore.export.onnx_export import export_onnx

FORMATS = ("onnx",)


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``depthart export --model M --format onnx -o DIR``."""
    e = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX graphs runnable without this package",
        description="Write the model's ONNX graphs (opset 18), a shared weights file and "
        "manifest.json to DIR; run it with `depthart predict --backend onnxruntime --model DIR`.",
    )
    e.add_argument("--model", required=True, help="checkpoint file or local MLflow model folder")
    e.add_argument("--format", choices=FORMATS, default="onnx", help="export format")
    e.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    e.add_argument("--force", action="store_true", help="replace an existing DIR")


def run_export(args: argparse.Namespace) -> int:
    """Export, then say where and what (one line)."""
    folder = export_onnx(args.model, args.output, force=args.force)
    manifest = read_manifest(folder)
    print(
        f"exported {args.model} ({manifest['kind']}, space {manifest['space']}) to {folder}: "
        f"{len(manifest['graphs'])} ONNX graphs, opset {manifest['opset']}",
        file=sys.stderr,
    )
    return 0
