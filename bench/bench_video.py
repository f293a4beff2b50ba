"""Video depth on generated walks: AbsRel beside the temporal scores, per alignment rule.

Renders ``--clips`` walks of ``--frames`` frames (``depthcore.synth.walk``: a camera
stepping through a synthetic room, exact depth), optionally round-trips them through an
mp4 as ``depthart predict clip.mp4`` would read them (``--through-mp4``), predicts every
frame and prints, averaged over clips (:func:`depthcore.evaluation.temporal.video_scores`):

* ``clip``: ``--align clip`` (frames fitted into frame 0's space), then ONE least-squares
  scale/shift for the whole clip against the truth (in the model's space);
* ``frame``: ``--align frame`` (each frame as predicted), then one scale/shift per clip;
* ``frame+oracle``: each frame fitted to its own truth, as single-image evaluation
  does: the best per-frame AbsRel, and what that hides about temporal change.

``temporal_change`` is the mean ``|dp - dg| / g`` of the change between consecutive
frames; ``flicker_gt`` is the true motion's own flicker (what a perfect model shows).

    python bench/bench_video.py --model checkpoints/model.safetensors --clips 3
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from depthcore.alignment import align_lsq
from depthcore.evaluation.temporal import video_scores
from depthcore.models import create_model, resolve_config
from depthcore.models.checkpoint import save_model
from depthcore.predict.predictor import DepthPredictor
from depthcore.predict.video import align_clip, read_video, write_video
from depthcore.synth.walk import render_walk

RULES = ("clip", "frame", "frame+oracle")


def tiny_checkpoint(folder: Path) -> Path:
    """A random-weight ``tiny`` checkpoint: the machinery runs, the figures mean nothing."""
    torch.manual_seed(0)
    vae, var = create_model("tiny")
    path = folder / "tiny.safetensors"
    save_model(path, vae, var, resolve_config("tiny"), meta={"space": "sqrt_disparity"})
    return path


def clip_depths(
    preds: list[np.ndarray], gt_THW: np.ndarray, mask_THW: np.ndarray, space: str, rule: str
) -> np.ndarray:
    """Metric depth of one clip's predictions under ``rule`` (see the module docstring)."""
    lo, hi = float(np.nanmin(gt_THW)) * 0.5, float(np.nanmax(gt_THW)) * 2.0
    if rule == "frame+oracle":
        return np.stack(
            [
                align_lsq(p, g, m, space, lo, hi)
                for p, g, m in zip(preds, gt_THW, mask_THW, strict=True)
            ]
        )
    aligned, _ = align_clip(preds, rule)
    return align_lsq(np.stack(aligned), gt_THW, mask_THW, space, lo, hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default: tiny)")
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="frame height and width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--through-mp4", action="store_true", help="encode/decode the frames")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        model = args.model or tiny_checkpoint(tmp)
        predictor = DepthPredictor.from_pretrained(model, device=args.device)
        scores: dict[str, list[dict[str, float]]] = {rule: [] for rule in RULES}
        for clip in range(args.clips):
            rgb_THW3, gt_THW = render_walk(args.frames, args.size, args.size, seed=args.seed + clip)
            frames = list(rgb_THW3)
            if args.through_mp4:
                write_video(tmp / "walk.mp4", frames, fps=10)
                frames = read_video(tmp / "walk.mp4", max_pixels=args.size**2).frames
            preds = [r.pred for r in predictor.predict_images(frames, seed=args.seed)]
            mask_THW = np.isfinite(gt_THW)
            for rule in RULES:
                depth_THW = clip_depths(preds, gt_THW, mask_THW, predictor.space, rule)
                scores[rule].append(video_scores(depth_THW, gt_THW, mask_THW))
    print(f"model {model}, space {predictor.space}, {args.clips} clips x {args.frames} frames")
    names = list(scores[RULES[0]][0])
    print(f"{'rule':<14}" + "".join(f"{n:>17}" for n in names))
    for rule in RULES:
        means = [np.mean([s[n] for s in scores[rule]]) for n in names]
        print(f"{rule:<14}" + "".join(f"{m:>17.4f}" for m in means))


if __name__ == "__main__":
    main()
