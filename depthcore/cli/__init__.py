"""``depthart``: the command line for using a trained model.

``depthart predict INPUT... -o OUTDIR`` turns files, folders (``--recursive``)
and glob patterns into depth outputs, one set per image, mirroring each folder's (or
glob's) tree under OUTDIR (see ``--help`` and :mod:`depthcore.viz` for the formats).
``depthart align DEPTH.npy --points known.csv -o metric.npy`` turns one output into
metres with a few pixels of known depth (:mod:`depthcore.predict.metric`).
``depthart profile apply NAME`` writes a parameter profile (``profiles/NAME.yaml``, e.g.
the official recipe ``paper-depthart``) into params.yaml (:mod:`depthcore.profiles`). A bad
image does not stop the run: it is reported in one line, the other images are still
written, the summary lists every failure and the exit status is 1.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from depthcore.cli.common import (
    _EPILOG,
    DEFAULT_MAX_PIXELS,
    DEFAULT_OUTPUTS,
    LOCAL_REGISTRY,
    OUTPUTS,
    PRECISIONS,
    _number_in,
    _say,
    module_doc,
)
from depthcore.cli.predict import _save_npy, run_predict
from depthcore.cli.video import run_video
from depthcore.cli.writer import DEFAULT_WRITERS, writer_count
from depthcore.errors import DEBUG_ENV, CheckpointError, DataError, DepthcoreError, run_guarded
from depthcore.export.cli import add_export_parser, run_export
from depthcore.io import refuse_overlaps
from depthcore.models.generate import DECODINGS
from depthcore.predict.onnx_backend import BACKENDS
from depthcore.predict.video import ALIGNS, DEFAULT_FPS, is_video_file
from depthcore.spaces import SPACES


def build_parser() -> argparse.ArgumentParser:
    """The ``depthart`` argument parser (a subcommand per use)."""
    parser = argparse.ArgumentParser(prog="depthart", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--debug", action="store_true", help=f"print tracebacks of failures (or {DEBUG_ENV}=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "predict",
        help="predict depth for images",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR")
    p.add_argument(
        "--model",
        default=None,
        help="checkpoint file, MLflow model folder or URI (models:/depthart@champion, "
        "runs:/<id>/model); default: the champion of MLFLOW_TRACKING_URI or ./mlflow.db",
    )
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--outputs", default=DEFAULT_OUTPUTS, help=f"comma list of {', '.join(OUTPUTS)}")
    p.add_argument("--ply", action="store_true", help="also write the point cloud")
    p.add_argument(
        "--fov",
        type=_number_in(0.0, 180.0),
        default=60.0,
        help="horizontal FoV in degrees for the PLY (0 < fov < 180)",
    )
    p.add_argument("--scales", action="store_true", help="write the per-scale strip figure")
    p.add_argument("--samples", type=int, default=0, help="N sampled rollouts: mean + std map")
    p.add_argument(
        "--decoding",
        choices=DECODINGS,
        default="expected",
        help="token choice: expected (deterministic), sample (official DepthART), greedy",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same output)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    p.add_argument(
        "--writers",
        type=writer_count,
        default=DEFAULT_WRITERS,
        help="threads writing outputs while the next batch runs (0: write in the main "
        f"thread, after each batch; default {DEFAULT_WRITERS})",
    )
    p.add_argument(
        "--precision", choices=PRECISIONS, default="fp32", help="bf16: faster, within tolerance"
    )
    p.add_argument(
        "--fit",
        choices=("pad", "stretch"),
        default=None,
        help="aspect handling (default: the checkpoint's, stretch as in training)",
    )
    p.add_argument(
        "--colormap",
        "--cmap",
        dest="cmap",
        default="turbo",
        help="matplotlib colour map of the colour PNG, or grey (default: turbo)",
    )
    p.add_argument(
        "--max-pixels",
        type=_number_in(0.0, math.inf),
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse larger photos before decoding them (default {DEFAULT_MAX_PIXELS:.0e}: "
        "about 1.5 GB of memory at that size)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="onnxruntime: --model is a folder written by `depthart export` (docs/export.md)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip images whose outputs all exist (a rerun, or ranks under torchrun)",
    )
    p.add_argument(
        "--video",
        action="store_true",
        help="each INPUT folder is one clip of frames in name order (video files need no flag)",
    )
    p.add_argument(
        "--align",
        choices=ALIGNS,
        default="clip",
        help="video: clip = one depth scale across frames (default), frame = each frame its own",
    )
    p.add_argument(
        "--fps",
        type=_number_in(0.0, 1000.0),
        default=DEFAULT_FPS,
        help="video: frame rate of the depth video for a folder of frames (a file keeps its own)",
    )
    add_export_parser(sub)
    a = sub.add_parser(
        "align",
        help="turn a predicted depth map into metres with a few known points",
        description=module_doc("depthcore.predict.metric"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("depth", type=Path, metavar="DEPTH.npy", help="a NAME_depth.npy of predict")
    a.add_argument("--points", type=Path, required=True, help="CSV with columns x,y,depth (m)")
    a.add_argument("-o", "--output", type=Path, required=True, metavar="METRIC.npy")
    a.add_argument(
        "--space", default="sqrt_disparity", choices=SPACES, help="the model's space (predict says)"
    )
    a.add_argument(
        "--max-depth", type=_number_in(0.0, math.inf), default=1000.0, help="clip far depths (m)"
    )
    pr = sub.add_parser(
        "profile",
        help="apply a parameter profile (profiles/NAME.yaml) to params.yaml",
        description=module_doc("depthcore.profiles"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pr.add_argument("action", choices=("apply", "list"), help="apply NAME, or list the profiles")
    pr.add_argument("name", nargs="?", help="profile name (paper-depthart, ...) or a .yaml path")
    pr.add_argument("--params", type=Path, default=Path("params.yaml"), help="the params file")
    g = sub.add_parser(
        "lineage",
        help="which data, commit, params and runs a registered model came from",
        description=module_doc("depthcore.tracking.lineage"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("model", metavar="MODEL_URI", help="models:/NAME@ALIAS or models:/NAME/VERSION")
    g.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else ./mlflow.db")
    return parser


def run_align(args: argparse.Namespace) -> int:
    """The ``align`` subcommand: metric depth from one predicted map and known points."""
    from depthcore.predict import metric  # each command imports its own: see module_doc

    if not args.depth.is_file():
        raise DataError(f"{args.depth}: depth map not found")
    try:
        depth_HW = np.load(args.depth, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{args.depth}: not a .npy depth map: {exc}") from exc
    refuse_overlaps({"-o": args.output}, {"DEPTH.npy": args.depth, "--points": args.points})
    points = metric.read_points(args.points)
    try:
        fit = metric.align_to_points(depth_HW, points, args.space, args.max_depth)
    except DataError as exc:
        raise DataError(f"{args.depth} with {args.points}: {exc}") from exc
    _save_npy(args.output, fit.depth_HW)
    _say(
        "aligned %s with %s: scale %.4g, shift %.4g in %s; rms error at the points %.3g m -> %s",
        args.depth, args.points, fit.scale, fit.shift, args.space, fit.rms_error_m, args.output,
    )  # fmt: skip
    return 0


def run_profile(args: argparse.Namespace) -> int:
    """``depthart profile list`` / ``depthart profile apply NAME``: what changed, one per line."""
    from depthcore import profiles

    root = args.params.resolve().parent
    if args.action == "list":
        for name in profiles.list_profiles(root):
            print(name)
        return 0
    if not args.name:
        raise DepthcoreError("profile apply needs a NAME (the profiles: depthart profile list)")
    changed = profiles.apply_profile(args.name, args.params)
    for key, (old, new) in changed.items():
        _say("%s: %s -> %s", key, "(absent)" if old is None else old, new)
    _say("%s: profile %s applied (%d keys changed)", args.params, args.name, len(changed))
    return 0


def run_lineage(args: argparse.Namespace) -> int:
    """The ``lineage`` subcommand: print a registered version's data hashes, commit, runs."""
    from depthcore.tracking import lineage
    from depthcore.tracking.registry import connect

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        registry = Path.cwd() / LOCAL_REGISTRY
        if not registry.is_file():
            raise CheckpointError(f"no --tracking-uri and no local MLflow registry {registry}")
        uri = f"sqlite:///{registry}"
    print(lineage.lineage_text(lineage.read_lineage(connect(uri), args.model)))
    return 0


def run_predict_or_video(args: argparse.Namespace) -> int:
    """``predict``: a video file among the inputs, or ``--video``, makes it a clip run."""
    if args.video or any(is_video_file(Path(text)) for text in args.inputs):
        return run_video(args)
    return run_predict(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``depthart``: any failure prints one ``error:`` line, returns 1."""
    args = build_parser().parse_args(argv)
    commands = {
        "predict": run_predict_or_video,
        "align": run_align,
        "profile": run_profile,
        "lineage": run_lineage,
        "export": run_export,
    }
    run = commands[args.command]
    return run_guarded("depthart", lambda: run(args), args.debug)
