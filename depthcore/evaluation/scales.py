"""The per-scale refinement curve of a trained model: AbsRel after each scale of generation.

The per-scale curve is the DepthART paper's refinement figure as a number: it shows
whether later scales refine the coarse prediction or drift from it. It is the
``scales@<objective>`` stage, apart from training, so that editing a metric or a
figure never retrains a model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from depthcore.alignment import align_lsq
from depthcore.config import frozen, param, to_dict
from depthcore.data.features import FeatureDataset
from depthcore.device import resolve_device
from depthcore.errors import DataError
from depthcore.evaluation.exposure import CSV_HEADER, MODES, ExposureGap, exposure_batch
from depthcore.evaluation.metrics import compute_metrics
from depthcore.io import atomic_path, write_text_atomic
from depthcore.models.ablation import prefix_variants
from depthcore.models.checkpoint import load_model
from depthcore.models.generate import DECODINGS, SamplingConfig, generate, sampling_for
from depthcore.models.regression import load_regression
from depthcore.spaces import rgb_to_model
from depthcore.viz import save_strip_figure

#: Aligned validation predictions are clipped to this depth range (metres).
VAL_DEPTH_RANGE = (1e-3, 1e3)


@frozen
class ScalesConfig:
    """The ``scales`` section of params.yaml: what only the scales stage reads.

    Its own section, so that editing the figures, the frames scored or the decoding
    reruns the scales stage and never a training.
    """

    models_dir: str = "models"  # reads <models_dir>/<objective>/model.safetensors, writes beside
    features_dir: str = "data/features"  # <features_dir>/<split>.h5 from the features stage
    split: str = "val"
    frames: int = param(16, ge=0)  # frames scored (0 = all), also by the prefix ablation
    batch_size: int = param(8, gt=0)
    # how tokens are decoded: greedy | sample | expected (as evaluate.decoding)
    decoding: Literal["greedy", "sample", "expected"] = "expected"
    figures: bool = True  # per-scale refinement PNGs of the first frames
    num_figures: int = param(2, ge=0)
    seed: int = 0  # the sampling seed (decoding: sample)
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = param(0, ge=0)  # torch intra-op threads; 0 = torch default


#: One validation batch (FeatureDataset fields) -> the cumulative prediction after each
#: scale, ``pred_KBSS`` in the model's space (K = 1 for a one-pass model).
ScalePredictor = Callable[[dict[str, torch.Tensor]], np.ndarray]


def var_scales(
    vae: torch.nn.Module,
    var: torch.nn.Module,
    device: torch.device | str,
    sampling: SamplingConfig,
) -> ScalePredictor:
    """The transformer's scales: generation from the cached image prefix."""

    def predict(batch: dict[str, torch.Tensor]) -> np.ndarray:
        prefix_BLC = batch["prefix_LC"].to(device)
        rgb_B3HW = rgb_to_model(batch["rgb_3SS"].to(device))
        gen = generate(
            vae, var, prefix_BLC, sampling=sampling, return_scales=True, rgb_B3HW=rgb_B3HW
        )
        return gen.scales_K_B1HW[:, :, 0].float().cpu().numpy()

    return predict


def regression_scales(net: torch.nn.Module, device: torch.device | str) -> ScalePredictor:
    """The regression baseline's single "scale": its one-pass prediction from the frame."""

    def predict(batch: dict[str, torch.Tensor]) -> np.ndarray:
        rgb_B3SS = rgb_to_model(batch["rgb_3SS"].to(device))
        return net(rgb_B3SS)[None, :, 0].float().cpu().numpy()

    return predict


@torch.no_grad()
def validate_scales(
    predict: ScalePredictor,
    labels: list[str],
    val_set: FeatureDataset,
    *,
    space: str,
    max_frames: int = 0,
    batch_size: int = 8,
    figures_dir: Path | None = None,
    num_figures: int = 0,
) -> list[float]:
    """Mean AbsRel after each scale of ``predict`` (named ``labels``) on the validation frames.

    For scale k the cumulative prediction is aligned by least squares in the
    model's space to the frame's valid depth (at model resolution) and scored.
    The first ``num_figures`` frames get a per-scale refinement strip PNG.
    """
    n = len(val_set) if max_frames <= 0 else min(len(val_set), max_frames)
    if n == 0:
        raise DataError(f"{val_set.path}: no validation frames")
    per_frame_K: list[list[float]] = []
    for start in range(0, n, batch_size):
        batch = val_set.get_batch(list(range(start, min(n, start + batch_size))))
        scales_KBHW = predict(batch)
        if scales_KBHW.shape[0] != len(labels):
            raise ValueError(f"{scales_KBHW.shape[0]} scales predicted for {len(labels)} labels")
        for j, aligned_K, abs_rel_K in score_scales(scales_KBHW, batch, space):
            per_frame_K.append(abs_rel_K)
            if figures_dir is not None and start + j < num_figures:
                depth_SS, mask_SS = batch["depth_SS"][j].numpy(), batch["mask_SS"][j].numpy()
                save_strip_figure(
                    figures_dir / f"scales_{start + j:03d}.png",
                    batch["rgb_3SS"][j].permute(1, 2, 0).numpy(),
                    [*aligned_K, np.where(mask_SS, depth_SS, np.nan)],
                    [*labels, "ground truth"],
                )
    return _mean_over_frames(per_frame_K, val_set)


def score_scales(
    scales_KBHW: np.ndarray, batch: dict[str, torch.Tensor], space: str
) -> list[tuple[int, list[np.ndarray], list[float]]]:
    """Per frame with valid depth: (index in batch, aligned prediction and AbsRel per scale).

    Each scale's prediction is aligned by least squares in the model's space to the
    frame's valid depth (at model resolution), then scored.
    """
    out = []
    for j in range(scales_KBHW.shape[1]):
        depth_SS = batch["depth_SS"][j].numpy()
        mask_SS = batch["mask_SS"][j].numpy()
        if not mask_SS.any():
            continue
        aligned_K = [
            align_lsq(p, depth_SS, mask_SS, space, *VAL_DEPTH_RANGE) for p in scales_KBHW[:, j]
        ]
        out.append(
            (j, aligned_K, [compute_metrics(a, depth_SS, mask_SS)["abs_rel"] for a in aligned_K])
        )
    return out


def _mean_over_frames(per_frame_K: list[list[float]], val_set: FeatureDataset) -> list[float]:
    if not per_frame_K:
        raise DataError(f"{val_set.path}: no validation frame has valid depth pixels")
    return [float(v) for v in np.mean(np.asarray(per_frame_K), axis=0)]


@torch.no_grad()
def exposure_gaps(
    vae: torch.nn.Module,
    var: torch.nn.Module,
    val_set: FeatureDataset,
    *,
    space: str,
    seed: int = 0,
    decodings: tuple[str, ...] = DECODINGS,
    max_frames: int = 0,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> dict[str, ExposureGap]:
    """The exposure gap (:mod:`depthcore.evaluation.exposure`) under each decoding.

    Per scale, the validation loss (mean over frames) and AbsRel (mean over frames with
    valid depth, scored as :func:`validate_scales`) with teacher-forced and own inputs.
    """
    n = len(val_set) if max_frames <= 0 else min(len(val_set), max_frames)
    if n == 0:
        raise DataError(f"{val_set.path}: no validation frames")
    gaps = {}
    for decoding in decodings:
        sampling = sampling_for(decoding, seed)
        generator = torch.Generator(device=device).manual_seed(seed)
        loss_sum = {mode: 0.0 for mode in MODES}
        frames: dict[str, list[list[float]]] = {mode: [] for mode in MODES}
        for start in range(0, n, batch_size):
            batch = val_set.get_batch(list(range(start, min(n, start + batch_size))))
            measured = exposure_batch(
                vae, var, batch["prefix_LC"].to(device), batch["fD_Chw"].to(device).float(),
                sampling, generator, rgb_to_model(batch["rgb_3SS"].to(device)),
            )  # fmt: skip
            for mode, (loss_K, pred_KBHW) in measured.items():
                loss_sum[mode] = loss_sum[mode] + loss_K.cpu().double() * len(batch["prefix_LC"])
                scored = score_scales(pred_KBHW.float().cpu().numpy(), batch, space)
                frames[mode] += [abs_rel_K for _, _, abs_rel_K in scored]
        gaps[decoding] = ExposureGap(
            decoding=decoding,
            patch_nums=list(vae.v_patch_nums),
            loss={mode: [float(v) / n for v in loss_sum[mode]] for mode in MODES},
            abs_rel={mode: _mean_over_frames(frames[mode], val_set) for mode in MODES},
        )
    return gaps


def write_exposure(folder: Path, gaps: dict[str, ExposureGap]) -> None:
    """``<folder>/<decoding>.csv`` per decoding (for ``dvc plots``), replaced atomically."""
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        for decoding, gap in gaps.items():
            (tmp / f"{decoding}.csv").write_text("\n".join([CSV_HEADER, *gap.csv_rows()]) + "\n")


@torch.no_grad()
def prefix_ablation(
    vae: torch.nn.Module,
    var: torch.nn.Module,
    val_set: FeatureDataset,
    *,
    space: str,
    sampling: SamplingConfig,
    max_frames: int = 16,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Does the model look at the image? Final-scale AbsRel with three prefixes.

    ``abs_rel_real``: the frame's own image prefix; ``abs_rel_zero``: an all-zero
    prefix; ``abs_rel_other``: the next frame's prefix (rolled by one); a model with a
    pixel path gets the matching frames (a grey one with the zeroed prefix), and two more
    scores that blank one route at a time: ``abs_rel_zero_prefix`` (token prefix zeroed,
    real frame) and ``abs_rel_zero_frame`` (real prefix, grey frame). A model that
    uses the image scores real < zero and real < other. ``pred_spread`` is the mean
    per-pixel standard deviation across frames of the real-prefix predictions (in
    the normalised space): near 0 means one map for every image.
    """
    n = len(val_set) if max_frames <= 0 else min(len(val_set), max_frames)
    if n < 2:
        raise DataError(f"{val_set.path}: the prefix ablation needs >= 2 frames, has {n}")
    batch = val_set.get_batch(list(range(n)))
    out: dict[str, float] = {}
    variants = prefix_variants(
        batch["prefix_LC"].to(device), rgb_to_model(batch["rgb_3SS"].to(device))
    )
    for name, (prefix_BLC, rgb_B3HW) in variants.items():
        gen = generate(vae, var, prefix_BLC, sampling=sampling, rgb_B3HW=rgb_B3HW)
        pred_BHW = gen.pred_B1HW[:, 0]
        pred_BHW = pred_BHW.float().cpu()
        if name == "real":
            out["pred_spread"] = float(pred_BHW.std(dim=0).mean())
        scores = []
        for j in range(n):
            depth_SS, mask_SS = batch["depth_SS"][j].numpy(), batch["mask_SS"][j].numpy()
            if mask_SS.any():
                aligned = align_lsq(pred_BHW[j].numpy(), depth_SS, mask_SS, space, *VAL_DEPTH_RANGE)
                scores.append(compute_metrics(aligned, depth_SS, mask_SS)["abs_rel"])
        if not scores:
            raise DataError(f"{val_set.path}: no validation frame has valid depth pixels")
        out[f"abs_rel_{name}"] = float(np.mean(scores))
    return out


def write_scales_csv(path: Path, patch_nums: list[int], abs_rel_K: list[float]) -> None:
    """``scales.csv`` (for ``dvc plots``): AbsRel after each scale of generation."""
    rows = ["scale,patch_num,tokens,abs_rel"]
    tokens = 0
    for k, (pn, v) in enumerate(zip(patch_nums, abs_rel_K, strict=True)):
        tokens += pn * pn
        rows.append(f"{k},{pn},{tokens},{v:.6f}")
    write_text_atomic(path, "\n".join(rows) + "\n")


def run_scales(
    cfg: ScalesConfig, objective: str, kind: Literal["generate", "one_pass"]
) -> dict[str, Any]:
    """The scales stage: ``scales.csv``, ``scales.json``, ``figures/`` and ``exposure/`` of one
    trained model (``exposure/<decoding>.csv``: the exposure gap per scale; empty for a
    one-pass model).

    Reads ``<models_dir>/<objective>/model.safetensors`` and the validation features the
    model was trained beside; writes next to the model. ``kind`` is the objective's scales
    kind (its registry entry): ``generate`` scores the prediction after each scale of
    generation and ablates the prefix; ``one_pass`` (the regression baseline) has one
    scale, its full-resolution prediction: a one-row curve, its final AbsRel.
    """
    if kind not in ("generate", "one_pass"):
        raise ValueError(f"unknown scales kind {kind!r} (generate or one_pass)")
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device)
    sampling = sampling_for(cfg.decoding, cfg.seed)
    out_dir = Path(cfg.models_dir) / objective
    checkpoint = out_dir / "model.safetensors"
    if kind == "one_pass":
        baseline = load_regression(checkpoint, map_location=device)
        predict = regression_scales(baseline.net.eval(), device)
        patch_nums = [baseline.config.image_size]
        labels = ["prediction"]
        loaded = None
    else:
        loaded = load_model(checkpoint, map_location=device)
        predict = var_scales(loaded.vae.eval(), loaded.var.eval(), device, sampling)
        patch_nums = list(loaded.vae.v_patch_nums)
        labels = [f"{pn}x{pn}" for pn in patch_nums]
    fields = ("prefix", "rgb", "depth", "mask") + (("fD",) if loaded is not None else ())
    val_set = FeatureDataset(Path(cfg.features_dir) / f"{cfg.split}.h5", fields=fields)
    space = str(val_set.attrs.get("space"))
    with atomic_path(out_dir / "figures") as figures:
        figures.mkdir(parents=True)
        abs_rel_K = validate_scales(
            predict, labels, val_set, space=space,
            max_frames=cfg.frames, batch_size=cfg.batch_size,
            figures_dir=figures, num_figures=cfg.num_figures if cfg.figures else 0,
        )  # fmt: skip
        ablation = None  # the regression baseline has no image prefix to ablate
        if loaded is not None:
            ablation = prefix_ablation(
                loaded.vae, loaded.var, val_set, space=space, sampling=sampling,
                max_frames=cfg.frames, device=device,
            )  # fmt: skip
    gaps = {}  # the regression baseline has no token inputs to teacher-force
    if loaded is not None:
        gaps = exposure_gaps(
            loaded.vae, loaded.var, val_set, space=space, seed=cfg.seed,
            max_frames=cfg.frames, batch_size=cfg.batch_size, device=device,
        )  # fmt: skip
    write_exposure(out_dir / "exposure", gaps)
    write_scales_csv(out_dir / "scales.csv", patch_nums, abs_rel_K)
    first, last = abs_rel_K[0], abs_rel_K[-1]
    summary = {
        "objective": objective,
        "space": space,
        "val_abs_rel": last,
        "val_abs_rel_first_scale": first,
        "refinement_gain": (first - last) / first if first > 0 else float("nan"),
        "val_abs_rel_per_scale": abs_rel_K,
        "prefix_ablation": ablation,
        # per decoding and scale: loss/AbsRel with teacher-forced vs own inputs (exposure.py)
        "exposure_gap": {decoding: gap.to_json() for decoding, gap in gaps.items()} or None,
        "patch_nums": patch_nums,
        "decoding": "one pass" if loaded is None else sampling.decoding,
        "config": to_dict(cfg),
    }
    write_text_atomic(out_dir / "scales.json", json.dumps(summary, indent=2) + "\n")
    return summary
