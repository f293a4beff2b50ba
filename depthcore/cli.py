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
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depthcore import profiles
from depthcore import viz as vis
from depthcore.data.domain import photo_warning
from depthcore.device import resolve_device
from depthcore.errors import DEBUG_ENV, CheckpointError, DataError, DepthcoreError, run_guarded
from depthcore.export.cli import add_export_parser, run_export
from depthcore.io import atomic_path, refuse_overlaps
from depthcore.models.generate import DECODINGS, sampling_for
from depthcore.predict import metric
from depthcore.predict.images import load_rgb
from depthcore.predict.inputs import Job, drop_outputs_dir, expand_inputs, output_files
from depthcore.predict.onnx_backend import BACKENDS, load_onnx_predictor
from depthcore.predict.predictor import DepthPredictor, DepthResult
from depthcore.predict.shard import is_finished, shard_from_env
from depthcore.spaces import normalised_to_depth
from depthcore.tracking import lineage
from depthcore.tracking.pyfunc import load_predictor as load_model_uri
from depthcore.tracking.registry import connect

OUTPUTS = ("npy", "png", "color", "ply")
DEFAULT_OUTPUTS = "npy,png,color"
PRECISIONS = ("fp32", "bf16")
GREY_NAMES = ("grey", "gray")  # a grey ramp: near is white, far is black
CHAMPION_URI = "models:/depthart@champion"
LOCAL_REGISTRY = "mlflow.db"
# Photos over this many pixels are refused (--max-pixels raises it): a 50-Mpx photo needs
# about 1.5 GB in predict (decoded RGB, the full-size float32 map and its outputs).
DEFAULT_MAX_PIXELS = 50_000_000

_EPILOG = """\
outputs per image NAME (by --outputs):
  NAME_depth.npy        float32 HxW affine-invariant depth at the input resolution
                        (no metric unit: the scene's near end is 1, see depthcore.predict.predictor)
  NAME_depth.png        16-bit PNG: 0 = invalid, else
                        depth = depth_min + (v-1)/65534*(depth_max-depth_min),
                        depth_min/depth_max in the PNG text chunks
  NAME_depth_color.png  --colormap (turbo: near = red (warm), far = blue; grey: near = white)
  NAME.ply              coloured binary point cloud (pinhole, horizontal --fov)
  NAME_scales.png       with --scales: input and the cumulative prediction after each scale
  NAME_std.npy/.png     with --samples N: per-pixel std over the N rollouts (normalised units)
"""


def _say(fmt: str, *args: object) -> None:
    """One line to stderr, printed above the progress bar rather than through it."""
    tqdm.write(fmt % args if args else fmt, file=sys.stderr)


def _number_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number strictly between ``low`` and ``high`` (NaN, inf
    and out-of-range values are refused before anything is loaded or written)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and low < value < high):
            bound = f"> {low:g}" if math.isinf(high) else f"between {low:g} and {high:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text!r}")
        return value

    return parse


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
    add_export_parser(sub)
    a = sub.add_parser(
        "align",
        help="turn a predicted depth map into metres with a few known points",
        description=metric.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("depth", type=Path, metavar="DEPTH.npy", help="a NAME_depth.npy of predict")
    a.add_argument("--points", type=Path, required=True, help="CSV with columns x,y,depth (m)")
    a.add_argument("-o", "--output", type=Path, required=True, metavar="METRIC.npy")
    a.add_argument("--space", default="sqrt_disparity", help="the model's space (predict says)")
    a.add_argument(
        "--max-depth", type=_number_in(0.0, math.inf), default=1000.0, help="clip far depths (m)"
    )
    pr = sub.add_parser(
        "profile",
        help="apply a parameter profile (profiles/NAME.yaml) to params.yaml",
        description=profiles.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pr.add_argument("action", choices=("apply", "list"), help="apply NAME, or list the profiles")
    pr.add_argument("name", nargs="?", help="profile name (paper-depthart, ...) or a .yaml path")
    pr.add_argument("--params", type=Path, default=Path("params.yaml"), help="the params file")
    g = sub.add_parser(
        "lineage",
        help="which data, commit, params and runs a registered model came from",
        description=lineage.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("model", metavar="MODEL_URI", help="models:/NAME@ALIAS or models:/NAME/VERSION")
    g.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else ./mlflow.db")
    return parser


def load_predictor(
    model: str | None,
    device: str,
    fit: str | None,
    seed: int,
    precision: str = "fp32",
    decoding: str = "expected",
) -> DepthPredictor:
    """The predictor named by ``--model``, or the champion of the local/default registry."""
    options = {
        "device": device,
        "fit": fit,
        "seed": seed,
        "precision": precision,
        "sampling": sampling_for(decoding, seed),
    }
    if model is not None:
        return load_model_uri(model, **options)
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        registry = Path.cwd() / LOCAL_REGISTRY
        if not registry.is_file():
            raise CheckpointError(
                f"no --model given and no local MLflow registry {registry}: "
                "run `dvc repro` first (it registers a champion) or pass --model"
            )
        uri = f"sqlite:///{registry}"
    try:
        return load_model_uri(CHAMPION_URI, tracking_uri=uri, **options)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} - run `dvc repro` first or pass --model") from exc


def write_outputs(
    out: Path, rgb_HW3: np.ndarray, result: DepthResult, args: argparse.Namespace, outputs: set[str]
) -> None:
    """Write the requested files for one image under the stem ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if "npy" in outputs:
        _save_npy(out.with_name(f"{out.name}_depth.npy"), result.depth)
    if "png" in outputs:
        vis.save_depth_png16(out.with_name(f"{out.name}_depth.png"), result.depth)
    if "color" in outputs:
        color_HW3 = vis.colorize(result.depth, cmap=_cmap(args.cmap))
        vis.save_rgb_png(out.with_name(f"{out.name}_depth_color.png"), color_HW3)
    if "ply" in outputs:
        vis.save_ply(out.with_name(f"{out.name}.ply"), result.depth, rgb_HW3, args.fov)
    if result.scales is not None:
        depths = [normalised_to_depth(s, result.space) for s in result.scales]
        titles = [f"scale {k + 1}" for k in range(len(depths))]
        vis.save_strip_figure(
            out.with_name(f"{out.name}_scales.png"), rgb_HW3, depths, titles, cmap=_cmap(args.cmap)
        )
    if result.std is not None:
        _save_npy(out.with_name(f"{out.name}_std.npy"), result.std)
        std_HW3 = vis.colorize(result.std, cmap="viridis", near_is_high=True)
        vis.save_rgb_png(out.with_name(f"{out.name}_std.png"), std_HW3)


def _cmap(name: str) -> str:
    """The matplotlib name of ``--colormap`` (``grey`` is matplotlib's ``gray``)."""
    return "gray" if name in GREY_NAMES else name


def _check_colormap(name: str) -> str | None:
    """An error line for an unknown colour map, else None (checked before the model loads)."""
    from matplotlib import colormaps

    if _cmap(name) in colormaps:
        return None
    return f"unknown --colormap {name!r}: use grey or a matplotlib name (turbo, viridis, ...)"


def _save_npy(path: Path, map_HW: np.ndarray) -> None:
    """Write one map as float32 ``.npy``, atomically (a crash never leaves half a file)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, map_HW.astype(np.float32))


def run_predict(args: argparse.Namespace) -> int:
    """The ``predict`` subcommand; returns the exit status (1 if any input failed)."""
    outputs = {o.strip() for o in args.outputs.split(",") if o.strip()} | (
        {"ply"} if args.ply else set()
    )
    unknown = outputs - set(OUTPUTS)
    bad_cmap = _check_colormap(args.cmap)
    if unknown or bad_cmap or args.batch_size < 1 or args.samples < 0:
        bad = (
            f"unknown --outputs {sorted(unknown)}"
            if unknown
            else bad_cmap or "--batch-size >= 1, --samples >= 0"
        )
        _say("error: %s", bad)
        return 2
    jobs, failures = expand_inputs(args.inputs, args.recursive)
    jobs, dropped = drop_outputs_dir(jobs, args.output, args.inputs)
    if dropped:
        _say("note: skipped %d file(s) inside the output folder %s", dropped, args.output)
    sources = {job.source.resolve() for job in jobs}
    for job in list(jobs):
        hit = [
            p for p in output_files(args.output / job.stem, outputs, args) if p.resolve() in sources
        ]
        if hit:
            jobs.remove(job)
            failures.append(f"{job.source}: its output {hit[0]} is an input image; not overwritten")
    for line in failures:
        _say("error: %s", line)
    shard = shard_from_env()  # one process, or this rank's share under torchrun
    if args.backend == "onnxruntime":
        predictor = load_onnx_predictor(
            args.model, args.fit, args.decoding, args.seed, args.precision, args.device
        )
    else:
        device = resolve_device(args.device, shard.local_rank)
        predictor = load_predictor(
            args.model, device, args.fit, args.seed, args.precision, args.decoding
        )
    _say(
        "model space %s on %s (%s); outputs are affine-invariant: `depthart align` makes metres",
        predictor.space, predictor.device, args.precision,
    )  # fmt: skip
    if warning := photo_warning(predictor.trained_on):
        _say("note: %s", warning)
    written = skipped = 0
    starts = shard.batch_starts(len(jobs), args.batch_size)
    share = sum(len(jobs[start : start + args.batch_size]) for start in starts)
    bar = tqdm(total=share, unit="img", disable=args.quiet, file=sys.stderr)
    for start in starts:
        chunk = jobs[start : start + args.batch_size]
        if args.resume and all(
            is_finished(args.output / job.stem, outputs, args.scales, args.samples) for job in chunk
        ):
            skipped += len(chunk)
            bar.update(len(chunk))
            continue
        batch: list[tuple[Job, np.ndarray]] = []
        for job in chunk:
            try:
                rgb_HW3, notes = load_rgb(
                    job.source, max_pixels=int(args.max_pixels), limit_hint=" (--max-pixels)"
                )
            except DepthcoreError as exc:
                failures.append(str(exc))
                _say("error: %s", exc)
                continue
            for note in notes:
                _say("warning: %s: %s", job.source, note)
            batch.append((job, rgb_HW3))
        if batch:
            results = predictor.predict_images(
                [rgb for _, rgb in batch],
                batch_size=args.batch_size,
                scales=args.scales,
                samples=args.samples,
                seed=args.seed + start,
            )
            for (job, rgb_HW3), result in zip(batch, results, strict=True):
                stem = args.output / job.stem
                before = set(stem.parent.glob(f"{stem.name}*")) if stem.parent.is_dir() else set()
                try:
                    write_outputs(stem, rgb_HW3, result, args, outputs)
                    written += 1
                except BaseException as exc:  # SIGTERM/Ctrl-C too: re-raised below
                    # all of an image's files or none: drop the ones this attempt wrote
                    for partial in set(stem.parent.glob(f"{stem.name}*")) - before:
                        partial.unlink(missing_ok=True)
                    if not isinstance(exc, OSError):
                        raise
                    failures.append(f"{job.source}: cannot write outputs: {exc}")
                    _say("error: %s", failures[-1])
        bar.update(min(args.batch_size, len(jobs) - start))
    bar.close()
    _say(
        "%swrote depth for %d of %d images to %s%s",
        shard.label, written, share, args.output,
        f" ({skipped} finished before, skipped)" if skipped else "",
    )  # fmt: skip
    if failures:
        _say("%d failed:\n%s", len(failures), "\n".join(f"  {f}" for f in failures))
        return 1
    return 0


def run_align(args: argparse.Namespace) -> int:
    """The ``align`` subcommand: metric depth from one predicted map and known points."""
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
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        registry = Path.cwd() / LOCAL_REGISTRY
        if not registry.is_file():
            raise CheckpointError(f"no --tracking-uri and no local MLflow registry {registry}")
        uri = f"sqlite:///{registry}"
    print(lineage.lineage_text(lineage.read_lineage(connect(uri), args.model)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``depthart``: any failure prints one ``error:`` line, returns 1."""
    args = build_parser().parse_args(argv)
    commands = {
        "predict": run_predict,
        "align": run_align,
        "profile": run_profile,
        "lineage": run_lineage,
        "export": run_export,
    }
    run = commands[args.command]
    return run_guarded("depthart", lambda: run(args), args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
