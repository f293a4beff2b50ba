"""The ``paper`` evaluation protocol: score as the official DepthART evaluation does.

Our ``native`` protocol (:mod:`depthcore.evaluation.run`) scores every benchmark at its
ground truth's own size. The official code (github bulatko/DepthART) does not, so its
numbers and ours are not comparable until the protocol is the same. ``paper`` follows it
step by step (each constant below names the official file it comes from):

1. Ground truth: NYUv2, TUM and ETH3D are resized to ``size: [256, 256]`` with
   ``F.interpolate(mode="nearest")`` (``config/core/datasets/eval/{nyuv2,tum,eth3d}.yaml``,
   ``mde/datasets/dataset.py: _Dataset.resize_target``); iBims-1 keeps its native
   480 x 640 (``ibims1.yaml: eval_fullres: true``). The valid mask is the official range
   test on the resized depth; the nearest resize picks source pixels, so resizing our
   range-masked map and its mask gives the same pixels.
2. Crops and masks: NYUv2 cuts 8 px on every side before the resize
   (``mde/datasets/eval/nyu.py: [8:-8, 8:-8]``; our reader's ``border8``) and scores the
   raw Kinect depth (``raw_depth_test.pkl``; our reader's ``rawDepths``, which is an
   inference from the file name: the pickles are not released); ranges NYU (1e-8, 10],
   TUM (0.01, 10], ETH3D (1e-4, 72], iBims (0.01, 50] with its invalid and transparent
   masks, which our readers already apply.
3. Prediction: the official adapter resizes the model's output to the model input's
   size (256 x 256, bicubic, ``mde/models/adapters/var.py``), then ``PredictionUpsampler``
   resizes it to the ground truth bilinearly with ``align_corners=True``
   (``mde/launchers/eval.py``). Both steps are linear, so doing them in the model's space
   and then mapping to depth is the same as the official order.
4. Alignment: scale only, ``median(gt / pred)`` over the valid pixels
   (``mde/capsules/aligner/aligners_fn.py: align_si_l1``, ``AlignerSIL1`` in
   ``config/launch/eval/depthART.yaml``), with ``torch.median``'s rule: the lower of the
   two middle values for an even count. No clipping to the benchmark range.
5. Metrics (``mde/capsules/meter/metrics_fn.py``), per image then the mean over images
   (``DepthMetric(normalize_by_image=True)``): ``AbsRel`` = mean(|p - g| / g) (our
   ``abs_rel``), ``D1`` (tag ``d-1.25``) = fraction with max(p/g, g/p) **> 1.25**, the
   bad-pixel fraction (our ``bad_pixel`` under this protocol; ``delta1`` stays the
   fraction < 1.25 beside it), ``MAE`` = mean |p - g| (our ``mae``).

The model input is not changed: every model sees the frame as it was trained
(``input_fit``); the official code stretches it with PIL bicubic (docs/paper.md lists
that difference).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from depthcore.alignment import align_median
from depthcore.evaluation.metrics import compute_metrics

Protocol = Literal["native", "paper"]
PROTOCOLS: tuple[str, ...] = ("native", "paper")

#: The model input size of every official eval config (``size: [256, 256]``): the
#: adapter resizes the prediction to it before the upsampler resizes it to the GT.
PAPER_INPUT_HW: tuple[int, int] = (256, 256)
#: Official D1 threshold (``metrics_fn.d1``: ``delta > 1.25`` counts as bad).
PAPER_D1_THRESHOLD = 1.25


@dataclasses.dataclass(frozen=True)
class PaperBenchmark:
    """How the official evaluation treats one benchmark."""

    gt_hw: tuple[int, int] | None  # ground truth resized (nearest) to this; None = native
    reader_kwargs: dict[str, Any]  # reader options that reproduce its crop and depth
    source: str  # the official config / code it comes from


PAPER_BENCHMARKS: dict[str, PaperBenchmark] = {
    "nyu": PaperBenchmark(
        (256, 256),
        {"crop": "border8", "depth_key": "rawDepths"},
        "config/core/datasets/eval/nyuv2.yaml size [256, 256]; mde/datasets/eval/nyu.py "
        "[8:-8, 8:-8] crop, raw_depth_test.pkl, range (1e-8, 10]",
    ),
    "tum": PaperBenchmark(
        (256, 256), {}, "config/core/datasets/eval/tum.yaml size [256, 256]; range (0.01, 10]"
    ),
    "eth3d": PaperBenchmark(
        (256, 256), {}, "config/core/datasets/eval/eth3d.yaml size [256, 256]; range (1e-4, 72]"
    ),
    "ibims": PaperBenchmark(
        None,
        {},
        "config/core/datasets/eval/ibims1.yaml eval_fullres: true (GT 480 x 640); "
        "range (0.01, 50], mask_invalid & mask_transp",
    ),
}

#: Our metric key -> the official metric (class and tag in mde/capsules/meter/metrics.py).
PAPER_METRIC_NAMES: dict[str, str] = {
    "abs_rel": "AbsRel (abs-rel)",
    "bad_pixel": "D1 (d-1.25: fraction with max(p/g, g/p) > 1.25)",
    "mae": "MAE (mae)",
}


def paper_protocol_problem(
    alignments: tuple[str, ...], benchmarks: Mapping[str, tuple[str | None, str | None]]
) -> str | None:
    """Why an ``evaluate`` section cannot be scored by the paper protocol (None if it can).

    ``benchmarks`` maps each configured name to its ``(format, crop)``.
    """
    if tuple(alignments) != ("median",):
        return (
            f"protocol paper scores with the official median alignment only; alignments is "
            f"{list(alignments)}, set alignments: [median]"
        )
    for bench, (format, crop) in benchmarks.items():
        if format is not None or bench not in PAPER_BENCHMARKS:
            return (
                f"benchmarks.{bench}: protocol paper is defined for the official benchmarks "
                f"{sorted(PAPER_BENCHMARKS)} only; use protocol native for your own data"
            )
        official = PAPER_BENCHMARKS[bench].reader_kwargs.get("crop")
        if crop is not None and crop != official:
            return (
                f"benchmarks.{bench}.crop is {crop!r}: protocol paper uses the official "
                f"crop ({official or 'none'}); remove the key"
            )
    return None


def nearest_resize(array_HW: np.ndarray, height: int, width: int) -> np.ndarray:
    """``F.interpolate(mode="nearest")`` of a 2-D map, as the official ``resize_target``.

    Output pixel (i, j) takes input pixel (floor(i * H_in / H), floor(j * W_in / W)).
    Booleans stay booleans (the valid mask and the plane masks follow the depth).
    """
    if array_HW.shape == (height, width):
        return array_HW
    src_11HW = torch.from_numpy(np.ascontiguousarray(array_HW, dtype=np.float32))[None, None]
    out_HW = F.interpolate(src_11HW, size=(height, width), mode="nearest")[0, 0].numpy()
    return out_HW > 0.5 if array_HW.dtype == bool else out_HW.astype(array_HW.dtype)


def paper_sample(sample: Any, gt_hw: tuple[int, int] | None) -> Any:
    """``sample`` with its ground truth (depth, mask, planes, edges) resized to ``gt_hw``."""
    if gt_hw is None or sample.depth_HW.shape == gt_hw:
        return sample
    (h, w), (h0, w0) = gt_hw, sample.depth_HW.shape
    intrinsics = sample.intrinsics_33
    if intrinsics is not None:
        intrinsics = np.diag([w / w0, h / h0, 1.0]) @ intrinsics
    planes = sample.plane_masks
    if planes is not None:
        planes = np.stack([nearest_resize(p, h, w) for p in planes])
    edges = sample.edges_HW
    return dataclasses.replace(
        sample,
        depth_HW=nearest_resize(sample.depth_HW, h, w),
        valid_HW=nearest_resize(sample.valid_HW.astype(bool), h, w),
        intrinsics_33=intrinsics,
        plane_masks=planes,
        edges_HW=None if edges is None else nearest_resize(edges.astype(bool), h, w),
    )


class PaperReader:
    """A benchmark reader whose samples carry the official ground-truth size."""

    def __init__(self, reader: Any, bench: str) -> None:
        self.reader = reader
        self.gt_hw = PAPER_BENCHMARKS[bench].gt_hw
        self.min_depth, self.max_depth = reader.min_depth, reader.max_depth

    def __len__(self) -> int:
        return len(self.reader)

    def __iter__(self) -> Iterator[Any]:
        return (paper_sample(s, self.gt_hw) for s in self.reader)


def upsample_bilinear(pred_BHW: np.ndarray, height: int, width: int) -> np.ndarray:
    """``native``: resize predictions bilinearly (half-pixel centres) to ``height`` x ``width``."""
    if pred_BHW.shape[1:] == (height, width):
        return pred_BHW.astype(np.float32, copy=False)
    pred_B1HW = torch.from_numpy(np.ascontiguousarray(pred_BHW, dtype=np.float32))[:, None]
    out = F.interpolate(pred_B1HW, size=(height, width), mode="bilinear", align_corners=False)
    return out[:, 0].numpy()


def paper_upsample(pred_BHW: np.ndarray, height: int, width: int) -> np.ndarray:
    """``paper``: bicubic to 256 x 256, then bilinear (``align_corners=True``) to H x W."""
    pred_B1HW = torch.from_numpy(np.ascontiguousarray(pred_BHW, dtype=np.float32))[:, None]
    if pred_B1HW.shape[-2:] != PAPER_INPUT_HW:
        pred_B1HW = F.interpolate(
            pred_B1HW, size=PAPER_INPUT_HW, mode="bicubic", align_corners=False
        )
    if pred_B1HW.shape[-2:] != (height, width):
        pred_B1HW = F.interpolate(
            pred_B1HW, size=(height, width), mode="bilinear", align_corners=True
        )
    return pred_B1HW[:, 0].numpy()


def lower_median(values: np.ndarray) -> float:
    """``torch.median``: the lower of the two middle values when the count is even."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0:
        raise ValueError("median of zero values")
    k = (flat.size - 1) // 2
    return float(np.partition(flat, k)[k])


def align_median_paper(pred_depth: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``align_si_l1``: ``pred * median(gt / pred)`` on ``mask`` (torch's median), no range clip.

    ``pred_depth`` is depth up to scale; it is kept >= 1e-6 (the official code would score
    a non-positive prediction; our metrics need p > 0).
    """
    return align_median(pred_depth, gt, mask, None, None, median=lower_median)


def paper_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Our metrics with the official D1 as ``bad_pixel`` (strict > 1.25) and MAE added."""
    row = compute_metrics(pred, gt, mask)
    valid = np.asarray(mask, bool) & (np.asarray(gt) > 0) & np.isfinite(gt)
    p, g = np.asarray(pred, np.float64)[valid], np.asarray(gt, np.float64)[valid]
    row["bad_pixel"] = float(np.mean(np.maximum(p / g, g / p) > PAPER_D1_THRESHOLD))
    row["mae"] = float(np.mean(np.abs(p - g)))
    return row


__all__ = [
    "PAPER_BENCHMARKS",
    "PAPER_INPUT_HW",
    "PAPER_METRIC_NAMES",
    "PROTOCOLS",
    "PaperBenchmark",
    "PaperReader",
    "Protocol",
    "align_median_paper",
    "lower_median",
    "nearest_resize",
    "paper_metrics",
    "paper_protocol_problem",
    "paper_sample",
    "paper_upsample",
    "upsample_bilinear",
]
