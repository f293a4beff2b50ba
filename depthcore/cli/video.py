"""``depthart predict clip.mp4 -o OUT`` (or ``--video FOLDER``): one clip at a time.

The per-image path (:mod:`depthcore.cli.predict`) dispatches here when an input is a
video file or ``--video`` is given; the clip logic is :mod:`depthcore.predict.video`.
A bad clip is reported in one line naming it; the other clips are still written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from depthcore.cli.common import OUTPUTS, _say
from depthcore.cli.predict import _check_colormap, _cmap, load_predictor
from depthcore.data.domain import photo_warning
from depthcore.device import resolve_device
from depthcore.errors import DepthcoreError
from depthcore.predict.onnx_backend import load_onnx_predictor
from depthcore.predict.video import read_clip, write_clip_outputs


def run_video(args: argparse.Namespace) -> int:
    """Predict every clip named in ``args.inputs``; 1 if any failed, 2 for bad options."""
    outputs = {o.strip() for o in args.outputs.split(",") if o.strip()}
    bad = sorted(outputs - set(OUTPUTS))
    problem = (
        f"unknown --outputs {bad}"
        if bad
        else _check_colormap(args.cmap)
        or ("--scales, --samples, --ply and --resume are for images, not video"
            if args.scales or args.samples or args.ply or args.resume else None)
    )  # fmt: skip
    if problem:
        _say("error: %s", problem)
        return 2
    if args.backend == "onnxruntime":
        predictor = load_onnx_predictor(
            args.model, args.fit, args.decoding, args.seed, args.precision, args.device
        )
    else:
        device = resolve_device(args.device, 0)
        predictor = load_predictor(
            args.model, device, args.fit, args.seed, args.precision, args.decoding
        )
    if warning := photo_warning(predictor.trained_on):
        _say("note: %s", warning)
    failures: list[str] = []
    for text in args.inputs:
        source = Path(text)
        try:
            clip = read_clip(source, int(args.max_pixels), args.fps)
            results = predictor.predict_images(
                clip.frames, batch_size=args.batch_size, seed=args.seed
            )
            record = write_clip_outputs(
                args.output / clip.name,
                [r.pred for r in results],
                predictor.space,
                predictor.near_far_ratio,
                align=args.align,
                fps=clip.fps,
                cmap=_cmap(args.cmap),
                outputs=outputs,
            )
        except DepthcoreError as exc:
            failures.append(str(exc))
            _say("error: %s", exc)
            continue
        _say(
            "wrote depth of %d frames (--align %s) to %s",
            record["frames"], args.align, args.output / clip.name,
        )  # fmt: skip
    if failures:
        _say("%d failed:\n%s", len(failures), "\n".join(f"  {f}" for f in failures))
        return 1
    return 0
