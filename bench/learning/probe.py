"""Train one DepthVAR from a feature cache and report whether it learned and looks at the image.

Prints (and writes as JSON with ``--out``) train and val per-scale AbsRel, the
real / zeroed / other-image prefix ablation, the content-free references on the same
val frames, and the seconds spent. The numbers in docs/learning.md come from it, e.g.::

    python -m bench.learning.probe --features data/features \\
        --tokenizer models/tokenizer/vae.safetensors --objective var_tf --steps 500 \\
        --set prefix_embed=type --set init_adaln_gamma=1.0 --out outputs/learning/e1.json

The pretraining objective runs here too (``--objective rgb_next_scale --prefix image``,
``--save`` its weights), and ``--init`` starts a depth objective from such weights::

    python -m bench.learning.probe ... --objective rgb_next_scale --train steps=300 \
        --save outputs/learning/pre.safetensors
    python -m bench.learning.probe ... --objective depthart --init outputs/learning/pre.safetensors
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

from depthcore.alignment import align_lsq
from depthcore.data.features import FeatureDataset
from depthcore.evaluation.metrics import compute_metrics
from depthcore.evaluation.scales import (
    VAL_DEPTH_RANGE,
    prefix_ablation,
    validate_scales,
    var_scales,
)
from depthcore.io import file_sha256, write_text_atomic
from depthcore.models import build_model, resolve_config
from depthcore.models.ablation import prefix_variants
from depthcore.models.checkpoint import load_pretrained_var, load_vae
from depthcore.models.generate import DECODINGS, sampling_for
from depthcore.models.references import REFERENCE_PREDICTORS
from depthcore.training.objectives import OBJECTIVES
from depthcore.training.pretrain import (
    PREFIX_MODES,
    RGB_NEXT_SCALE,
    PretrainConfig,
    PretrainTrainer,
)
from depthcore.training.train_config import TrainConfig
from depthcore.training.trainer import Trainer

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


@torch.no_grad()
def rgb_token_report(trainer: PretrainTrainer, ds: FeatureDataset, n: int) -> dict[str, Any]:
    """Teacher-forced per-scale CE and token accuracy of the RGB tokens on the first ``n``
    frames, with the real / zeroed / other-image prefix (the copy path at work or not)."""
    batch = ds.get_batch(list(range(min(n, len(ds)))))
    prefix_BLC, fRGB_BChw, rgb_B3HW = trainer.loss_inputs(batch)
    out: dict[str, Any] = {}
    trainer.var.eval()
    for name, (variant_BLC, v_rgb) in prefix_variants(prefix_BLC, rgb_B3HW).items():
        loss = trainer.loss_fn(trainer.vae, trainer.var, variant_BLC, fRGB_BChw, rgb_B3HW=v_rgb)
        acc = (loss.logits_BLV.argmax(-1) == loss.target_BL).float().mean().item()
        out[name] = {
            "ce_K": [round(v, 3) for v in loss.per_scale_loss.tolist()],
            "acc": round(acc, 4),
        }
    trainer.var.train()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", required=True, help="feature-cache dir (train.h5, val.h5)")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--objective", default="var_tf", choices=[*OBJECTIVES, RGB_NEXT_SCALE])
    ap.add_argument("--prefix", default="image", choices=PREFIX_MODES, help="rgb_next_scale")
    ap.add_argument("--init", default="", help="var.safetensors to start from (pretrained)")
    ap.add_argument("--save", default="", help="write the trained model here (safetensors)")
    ap.add_argument("--train", nargs="*", default=[], help="TrainConfig key=value")
    ap.add_argument("--set", nargs="*", default=[], help="VARConfig key=value")
    ap.add_argument("--eval-frames", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decoding", default="expected", choices=DECODINGS, help="val generation")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    feats = Path(args.features)
    train_kw = {"steps": 500, "batch_size": 8, "warmup_steps": 30, **_parse_sets(args.train)}
    if "betas" in train_kw:
        train_kw["betas"] = tuple(train_kw["betas"])
    pretraining = args.objective == RGB_NEXT_SCALE
    if pretraining:
        train_kw["prefix"] = args.prefix
    with tempfile.TemporaryDirectory() as tmp:
        cfg = (PretrainConfig if pretraining else TrainConfig)(
            tokenizer=args.tokenizer, features_dir=str(feats), out_dir=tmp,
            resume=False, ckpt_every=0, val_frames=args.eval_frames, **train_kw,
        )  # fmt: skip
        model_cfg = resolve_config(cfg.model, var=_parse_sets(args.set))
        torch.manual_seed(cfg.seed)
        _, var = build_model(model_cfg)
        if args.init:
            load_pretrained_var(args.init, var, model_cfg, file_sha256(cfg.tokenizer))
        vae = load_vae(cfg.tokenizer, expected=model_cfg.vae).vae
        trainer_cls = PretrainTrainer if pretraining else Trainer
        train_set = FeatureDataset(feats / "train.h5", fields=trainer_cls.fields_for(var))
        trainer = trainer_cls(vae, var, model_cfg, cfg, args.objective, train_set, None, tmp)
        t0 = time.perf_counter()
        fit = trainer.fit()
        train_s = time.perf_counter() - t0
        if args.save:
            trainer.save_model(Path(args.save))
    var.eval()
    space = str(train_set.attrs["space"])
    result: dict[str, Any] = {
        "objective": args.objective,
        "init": args.init,
        "train": {k: v for k, v in dataclasses.asdict(cfg).items() if k in train_kw or k == "lr"},
        "var": _parse_sets(args.set),
        "train_frames": len(train_set),
        "train_s": round(train_s, 1),
        "loss_ema": fit["loss_ema"],
        "last_step": {k: round(v, 4) for k, v in fit["last"].items()},
        "ms_per_step": round(fit["ms_per_step"], 1),
        "decoding": args.decoding,
    }
    for split in ("train", "val") if pretraining else ():
        ds = FeatureDataset(feats / f"{split}.h5", fields=PretrainTrainer.fields)
        result[f"{split}_rgb_tokens"] = rgb_token_report(trainer, ds, args.eval_frames)
    labels = [f"{pn}x{pn}" for pn in vae.v_patch_nums]
    for split in () if pretraining else ("train", "val"):
        ds = FeatureDataset(feats / f"{split}.h5", fields=EVAL_FIELDS)
        kw = {"space": space, "max_frames": args.eval_frames}
        sampling = sampling_for(args.decoding)
        abs_rel_K = validate_scales(var_scales(vae, var, "cpu", sampling), labels, ds, **kw)
        result[f"{split}_abs_rel_K"] = [round(v, 4) for v in abs_rel_K]
        ablation = prefix_ablation(vae, var, ds, sampling=sampling, **kw)
        result[f"{split}_ablation"] = {k: round(v, 4) for k, v in ablation.items()}
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
