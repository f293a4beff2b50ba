"""Train one DepthVAR from a feature cache and report whether it learned and looks at the image.

Prints (and writes as JSON with ``--out``) train and val per-scale AbsRel, the
real / zeroed / other-image prefix ablation, the content-free references on the same
val frames, and the seconds spent. The numbers in docs/learning.md come from it, e.g.::

    python -m bench.learning.probe --features data/features \\
        --tokenizer models/tokenizer/vae.safetensors --objective var_tf --steps 500 \\
        --set prefix_embed=type --set init_adaln_gamma=1.0 --out outputs/learning/e1.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from depthcore.evaluation.alignment import align_lsq
from depthcore.evaluation.metrics import compute_metrics
from depthcore.evaluation.references import REFERENCE_PREDICTORS
from depthcore.evaluation.scales import (
    VAL_DEPTH_RANGE,
    prefix_ablation,
    validate_scales,
    var_scales,
)
from depthcore.io import write_text_atomic
from depthcore.models import build_model, resolve_config
from depthcore.models.checkpoint import load_vae
from depthcore.training.feature_cache import FeatureDataset
from depthcore.training.trainer import TrainConfig, Trainer

EVAL_FIELDS = ("prefix", "rgb", "depth", "mask")


def _parse_sets(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs with JSON values (``lr=3e-3``, ``prefix_embed=type``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def reference_abs_rel(ds: FeatureDataset, n: int) -> dict[str, float]:
    """Mean lsq-aligned AbsRel of each content-free reference on the first ``n`` frames."""
    batch = ds.get_batch(list(range(min(n, len(ds)))))
    rgb_BHW3 = batch["rgb_3SS"].permute(0, 2, 3, 1).numpy()
    out = {}
    for name, cls in REFERENCE_PREDICTORS.items():
        ref = cls()
        pred_BHW = ref.predict_batch(rgb_BHW3)
        scores = []
        for j in range(pred_BHW.shape[0]):
            depth, mask = batch["depth_SS"][j].numpy(), batch["mask_SS"][j].numpy()
            if mask.any():
                aligned = align_lsq(pred_BHW[j], depth, mask, ref.space, *VAL_DEPTH_RANGE)
                scores.append(compute_metrics(aligned, depth, mask)["abs_rel"])
        out[name] = float(np.mean(scores))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", required=True, help="feature-cache dir (train.h5, val.h5)")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--objective", default="var_tf", choices=["depthart", "var_tf"])
    ap.add_argument("--train", nargs="*", default=[], help="TrainConfig key=value")
    ap.add_argument("--set", nargs="*", default=[], help="VARConfig key=value")
    ap.add_argument("--eval-frames", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="")
    ap.add_argument("--save", default="", help="write the trained transformer (safetensors)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    feats = Path(args.features)
    train_kw = {"steps": 500, "batch_size": 8, "warmup_steps": 30, **_parse_sets(args.train)}
    if "betas" in train_kw:
        train_kw["betas"] = tuple(train_kw["betas"])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            tokenizer=args.tokenizer, features_dir=str(feats), out_dir=tmp, tracking="none",
            resume=False, figures=False, ckpt_every=0, val_frames=args.eval_frames, **train_kw,
        )  # fmt: skip
        model_cfg = resolve_config(cfg.model, var=_parse_sets(args.set))
        torch.manual_seed(cfg.seed)
        _, var = build_model(model_cfg)
        vae = load_vae(cfg.tokenizer, expected=model_cfg.vae).vae
        train_set = FeatureDataset(feats / "train.h5")
        trainer = Trainer(vae, var, model_cfg, cfg, args.objective, train_set, None, tmp)
        t0 = time.perf_counter()
        fit = trainer.fit()
        train_s = time.perf_counter() - t0
    var.eval()
    if args.save:
        save_file(var.state_dict(), args.save)
    labels = [f"{pn}x{pn}" for pn in vae.v_patch_nums]
    space = str(train_set.attrs["space"])
    result: dict[str, Any] = {
        "objective": args.objective,
        "train": {k: v for k, v in dataclasses.asdict(cfg).items() if k in train_kw or k == "lr"},
        "var": _parse_sets(args.set),
        "train_frames": len(train_set),
        "train_s": round(train_s, 1),
        "loss_ema": fit["loss_ema"],
        "last_step": {k: round(v, 4) for k, v in fit["last"].items()},
        "ms_per_step": round(fit["ms_per_step"], 1),
    }
    for split in ("train", "val"):
        ds = FeatureDataset(feats / f"{split}.h5", fields=EVAL_FIELDS)
        kw = {"space": space, "max_frames": args.eval_frames}
        abs_rel_K = validate_scales(var_scales(vae, var, "cpu"), labels, ds, **kw)
        result[f"{split}_abs_rel_K"] = [round(v, 4) for v in abs_rel_K]
        result[f"{split}_ablation"] = {
            k: round(v, 4) for k, v in prefix_ablation(vae, var, ds, **kw).items()
        }
        result[f"{split}_references"] = {
            k: round(v, 4) for k, v in reference_abs_rel(ds, args.eval_frames).items()
        }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(args.out), text + "\n")


if __name__ == "__main__":
    main()
