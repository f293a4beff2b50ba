"""The tokenizer's reconstruction ceiling: how well depth survives encode -> quantise -> decode.

Decode each validation frame's quantised depth, undo the frame's normalisation
and score it against the frame's valid depth: no token model on top of this
tokenizer can do better. A stage of its own (``tokenizer_eval``) so that editing a
metric rescores the tokenizer without retraining it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from depthcore.alignment import fit_scale_shift
from depthcore.config import frozen, param, to_dict
from depthcore.data.frames import frame_at_size
from depthcore.data.shards import ShardDataset
from depthcore.data.transforms import Normalisation, invert_normalisation
from depthcore.device import resolve_device
from depthcore.errors import DataError
from depthcore.evaluation.metrics import compute_metrics
from depthcore.io import write_text_atomic
from depthcore.models import resolve_config
from depthcore.models.checkpoint import load_vae
from depthcore.spaces import depth_to_space, target_to_depth3

log = logging.getLogger(__name__)

#: Depth reconstructions are clipped to [MIN_DEPTH, inf) before scoring (a target of
#: exactly -1 in scale_depth space is depth 0).
MIN_DEPTH = 1e-3


def frame_normalisation(item: dict[str, Any], space: str) -> Normalisation:
    """The affine map preprocessing used for this frame, recovered from its own arrays.

    ``target = a * g(depth) + b`` holds exactly on valid pixels the clip did not
    touch, so a least-squares fit there gives (a, b) whatever percentiles the
    preprocess stage was configured with.
    """
    target = np.asarray(item["target_HW"], dtype=np.float64)
    depth = np.asarray(item["depth_HW"], dtype=np.float64)
    mask = np.asarray(item["mask_HW"], dtype=bool) & (np.abs(target) < 1.0 - 1e-6)
    mask &= np.isfinite(depth) & (depth > 0)
    if mask.sum() < 2:
        raise DataError(f"frame {item.get('key')}: too few unclipped valid pixels to invert")
    a, b = fit_scale_shift(depth_to_space(depth[mask], space), target[mask])
    if space == "scale_depth":
        b = -1.0  # scale only by definition
    return Normalisation(space, a, b)


@torch.no_grad()
def reconstruction_metrics(
    vae: torch.nn.Module,
    dataset: Any,
    image_size: int,
    space: str,
    max_frames: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """Mean depth metrics of decode(quantise(encode(depth3))) against the valid depth."""
    vae.to(device).eval()
    n = len(dataset) if max_frames <= 0 else min(len(dataset), max_frames)
    if n == 0:
        raise DataError("tokenizer: no frames to score the reconstruction on")
    per_frame: list[dict[str, float]] = []
    for i in range(n):
        item = dataset[i]
        norm = frame_normalisation(item, space)
        _, target_SS, depth_SS, mask_SS = frame_at_size(item, image_size)
        x_13SS = target_to_depth3(torch.from_numpy(target_SS)[None]).to(device)
        rec_13SS, _ = vae(x_13SS)
        rec_SS = rec_13SS.clamp(-1, 1).mean(dim=1)[0].cpu().numpy()
        pred_SS = np.maximum(invert_normalisation(rec_SS, norm), MIN_DEPTH)
        if mask_SS.any():
            per_frame.append(compute_metrics(pred_SS, depth_SS, mask_SS))
    if not per_frame:
        raise DataError("tokenizer: no scored frame has valid depth pixels")
    return {k: float(np.mean([m[k] for m in per_frame])) for k in per_frame[0]} | {
        "frames": float(len(per_frame))
    }


class CeilingSettings(Protocol):
    """Which tokenizer the tokenizer_eval stage scores: keys of the ``tokenizer`` section (a
    frozen dataclass, written whole into the metrics file); the evaluation takes them as
    given and imports no training code."""

    @property
    def model(self) -> str: ...
    @property
    def out_dir(self) -> str: ...
    @property
    def data_dir(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def num_threads(self) -> int: ...


@frozen
class TokenizerEvalConfig:
    """The ``tokenizer_eval`` section: what only the tokenizer_eval stage reads (so that
    scoring more frames never retrains the tokenizer)."""

    split: str = "val"  # the frames scored for the reconstruction ceiling
    frames: int = param(32, ge=0)  # frames scored for the reconstruction AbsRel; 0 = all


def run_tokenizer_eval(
    cfg: CeilingSettings, ev: TokenizerEvalConfig | None = None
) -> dict[str, Any]:
    """The tokenizer_eval stage: ``<out_dir>/tokenizer_metrics.json`` (a DVC metrics file)
    for the tokenizer of ``cfg``, scored on the frames of ``ev``."""
    ev = ev or TokenizerEvalConfig()
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device)
    model_cfg = resolve_config(cfg.model)
    out_dir = Path(cfg.out_dir)
    vae = load_vae(out_dir / "vae.safetensors", expected=model_cfg.vae).vae
    dataset = ShardDataset(cfg.data_dir, ev.split)
    recon = reconstruction_metrics(
        vae, dataset, model_cfg.image_size, str(dataset.space),
        max_frames=ev.frames, device=device,
    )  # fmt: skip
    metrics = {f"recon_{k}": v for k, v in recon.items()}
    path = out_dir / "tokenizer_metrics.json"
    record = {**metrics, "config": to_dict(cfg), "eval": to_dict(ev)}
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    log.info(
        "tokenizer reconstruction AbsRel %.4f on %d %s frames",
        recon["abs_rel"], int(recon["frames"]), ev.split,
    )  # fmt: skip
    return metrics
