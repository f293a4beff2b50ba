"""``depthart predict``: files, folders and globs in, one set of depth outputs per image out.

A bad image does not stop the run: it is reported in one line, the other images are still
written, the summary lists every failure and the exit status is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depthcore import viz as vis
from depthcore.cli.common import CHAMPION_URI, GREY_NAMES, LOCAL_REGISTRY, OUTPUTS, _say
from depthcore.cli.writer import OutputWriter
from depthcore.data.domain import photo_warning
from depthcore.device import resolve_device
from depthcore.errors import CheckpointError, DepthcoreError
from depthcore.io import atomic_path, leftovers_listed_once
from depthcore.models.generate import sampling_for
from depthcore.predict.images import load_rgb
from depthcore.predict.inputs import Job, drop_outputs_dir, expand_inputs, output_files
from depthcore.predict.onnx_backend import load_onnx_predictor
from depthcore.predict.predictor import DepthPredictor, DepthResult
from depthcore.predict.shard import is_finished, shard_from_env
from depthcore.spaces import normalised_to_depth
from depthcore.tracking.pyfunc import load_predictor as load_model_uri

# a write job's key: its place in the serial order (batch, 1, image) and its input file
_WriteKey = tuple[tuple[int, int, int], Path]


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
    if vis.is_colormap(_cmap(name)):
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
    ordered: list[tuple[tuple[int, int, int], str]] = []  # (batch, 0 read/1 write, image)
    starts = shard.batch_starts(len(jobs), args.batch_size)
    share = sum(len(jobs[start : start + args.batch_size]) for start in starts)
    bar = tqdm(total=share, unit="img", disable=args.quiet, file=sys.stderr)
    # one batch is written while the next is computed: at most two batches of results held
    writer: OutputWriter[_WriteKey] = OutputWriter(args.writers, max_pending=args.batch_size)

    def report(done: list[tuple[_WriteKey, OSError | None]]) -> None:
        nonlocal written
        for key, error in done:
            if error is None:
                written += 1
                continue
            order, source = key
            ordered.append((order, f"{source}: cannot write outputs: {error}"))
            _say("error: %s", ordered[-1][1])

    # each output folder listed once for a killed run's leftovers, not once per file written
    with contextlib.ExitStack() as stack:
        stack.enter_context(leftovers_listed_once())
        stack.callback(writer.close)  # on SIGTERM/Ctrl-C: no thread writes on; all or none
        for start in starts:
            chunk = jobs[start : start + args.batch_size]
            if args.resume and all(
                is_finished(args.output / job.stem, outputs, args.scales, args.samples)
                for job in chunk
            ):
                skipped += len(chunk)
                bar.update(len(chunk))
                continue
            batch: list[tuple[Job, np.ndarray]] = []
            for i, job in enumerate(chunk):
                try:
                    rgb_HW3, notes = load_rgb(
                        job.source, max_pixels=int(args.max_pixels), limit_hint=" (--max-pixels)"
                    )
                except DepthcoreError as exc:
                    ordered.append(((start, 0, i), str(exc)))
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
                for i, ((job, rgb_HW3), result) in enumerate(zip(batch, results, strict=True)):
                    stem = args.output / job.stem
                    write = functools.partial(write_outputs, stem, rgb_HW3, result, args, outputs)
                    files = output_files(stem, outputs, args)
                    report(writer.submit(((start, 1, i), job.source), files, write))
            bar.update(min(args.batch_size, len(jobs) - start))
        report(writer.drain())
    failures += [line for _, line in sorted(ordered, key=lambda item: item[0])]
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
