"""``depthart``: the command line for using a trained model.

``depthart predict INPUT... -o OUTDIR`` turns files, folders (``--recursive``)
and glob patterns into depth outputs, one set per image (see ``--help`` and
:mod:`depthcore.viz` for the formats). A bad image does not stop the run:
it is reported in one line, the other images are still written, the summary
lists every failure and the exit status is 1.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depthcore import viz as vis
from depthcore.errors import DEBUG_ENV, CheckpointError, DepthcoreError, run_guarded
from depthcore.io import atomic_path
from depthcore.predict.predictor import DepthPredictor, DepthResult, load_rgb
from depthcore.spaces import normalised_to_depth
from depthcore.tracking.pyfunc import load_predictor as load_model_uri

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
OUTPUTS = ("npy", "png", "color", "ply")
DEFAULT_OUTPUTS = "npy,png,color"
CHAMPION_URI = "models:/depthart@champion"
LOCAL_REGISTRY = "mlflow.db"

_EPILOG = """\
outputs per image NAME (by --outputs):
  NAME_depth.npy        float32 HxW affine-invariant depth at the input resolution
                        (no metric unit: the scene's near end is 1, see depthcore.predict.predictor)
  NAME_depth.png        16-bit PNG: 0 = invalid, else
                        depth = depth_min + (v-1)/65534*(depth_max-depth_min),
                        depth_min/depth_max in the PNG text chunks
  NAME_depth_color.png  turbo colour map, near = red (warm), far = blue
  NAME.ply              coloured binary point cloud (pinhole, horizontal --fov)
  NAME_scales.png       with --scales: input and the cumulative prediction after each scale
  NAME_std.npy/.png     with --samples N: per-pixel std over the N rollouts (normalised units)
"""


def _say(fmt: str, *args: object) -> None:
    """One line to stderr, printed above the progress bar rather than through it."""
    tqdm.write(fmt % args if args else fmt, file=sys.stderr)


@dataclass
class Job:
    """One input image and the stem (relative to OUTDIR) its outputs are written under."""

    source: Path
    stem: Path


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
    p.add_argument("--fov", type=float, default=60.0, help="horizontal FoV in degrees for the PLY")
    p.add_argument("--scales", action="store_true", help="write the per-scale strip figure")
    p.add_argument("--samples", type=int, default=0, help="N sampled rollouts: mean + std map")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same output)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument(
        "--fit",
        choices=("pad", "stretch"),
        default=None,
        help="aspect handling (default: the checkpoint's, stretch as in training)",
    )
    p.add_argument("--cmap", default="turbo", help="matplotlib colour map for the colour PNG")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def expand_inputs(inputs: Sequence[str], recursive: bool) -> tuple[list[Job], list[str]]:
    """Files, folders, globs -> jobs (sorted, unique stems) and one failure line per bad input."""
    sources: list[tuple[Path, Path]] = []  # (file, stem relative to OUTDIR)
    failures: list[str] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)
            files = [p for p in files if p.is_file()]
            if not files:
                failures.append(f"{path}: folder has no images (.png/.jpg/...)")
            sources += [(p, p.relative_to(path).with_suffix("")) for p in files]
        elif path.exists():
            sources.append((path, Path(path.stem)))
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
            if not matches:
                failures.append(f"{text}: pattern matches no files")
            sources += [(p, Path(p.stem)) for p in matches]
        else:
            failures.append(f"{path}: no such file or directory")
    jobs: list[Job] = []
    seen: set[Path] = set()
    for source, stem in sources:
        if stem in seen:  # x.png and x.jpg side by side: keep both, name by extension
            stem = stem.with_name(f"{stem.name}_{source.suffix.lstrip('.').lower()}")
        if stem in seen:
            continue  # the same file given twice
        seen.add(stem)
        jobs.append(Job(source, stem))
    return jobs, failures


def load_predictor(model: str | None, device: str, fit: str | None, seed: int) -> DepthPredictor:
    """The predictor named by ``--model``, or the champion of the local/default registry."""
    if model is not None:
        return load_model_uri(model, device=device, fit=fit, seed=seed)
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
        return load_model_uri(CHAMPION_URI, tracking_uri=uri, device=device, fit=fit, seed=seed)
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
        color_HW3 = vis.colorize(result.depth, cmap=args.cmap)
        vis.save_rgb_png(out.with_name(f"{out.name}_depth_color.png"), color_HW3)
    if "ply" in outputs:
        vis.save_ply(out.with_name(f"{out.name}.ply"), result.depth, rgb_HW3, args.fov)
    if result.scales is not None:
        depths = [normalised_to_depth(s, result.space) for s in result.scales]
        titles = [f"scale {k + 1}" for k in range(len(depths))]
        vis.save_strip_figure(
            out.with_name(f"{out.name}_scales.png"), rgb_HW3, depths, titles, cmap=args.cmap
        )
    if result.std is not None:
        _save_npy(out.with_name(f"{out.name}_std.npy"), result.std)
        std_HW3 = vis.colorize(result.std, cmap="viridis", near_is_high=True)
        vis.save_rgb_png(out.with_name(f"{out.name}_std.png"), std_HW3)


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
    if unknown or args.batch_size < 1 or args.samples < 0:
        bad = (
            f"unknown --outputs {sorted(unknown)}"
            if unknown
            else "--batch-size >= 1, --samples >= 0"
        )
        _say("error: %s", bad)
        return 2
    jobs, failures = expand_inputs(args.inputs, args.recursive)
    for line in failures:
        _say("error: %s", line)
    predictor = load_predictor(args.model, args.device, args.fit, args.seed)
    written = 0
    bar = tqdm(total=len(jobs), unit="img", disable=args.quiet, file=sys.stderr)
    for start in range(0, len(jobs), args.batch_size):
        batch: list[tuple[Job, np.ndarray]] = []
        for job in jobs[start : start + args.batch_size]:
            try:
                rgb_HW3, notes = load_rgb(job.source)
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
                try:
                    write_outputs(args.output / job.stem, rgb_HW3, result, args, outputs)
                    written += 1
                except OSError as exc:
                    failures.append(f"{job.source}: cannot write outputs: {exc}")
                    _say("error: %s", failures[-1])
        bar.update(min(args.batch_size, len(jobs) - start))
    bar.close()
    _say("wrote depth for %d of %d images to %s", written, len(jobs), args.output)
    if failures:
        _say("%d failed:\n%s", len(failures), "\n".join(f"  {f}" for f in failures))
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``depthart``: any failure prints one ``error:`` line, returns 1."""
    args = build_parser().parse_args(argv)
    return run_guarded("depthart", lambda: run_predict(args), args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
