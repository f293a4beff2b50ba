"""Can the transformer memorise a handful of frames? Per-scale teacher-forced CE vs steps.

A model that cannot push the cross-entropy of 8 fixed frames well below the code
marginal is broken or badly initialised, whatever the data. Usage::

    python -m bench.learning.overfit --features data/features \\
        --tokenizer models/tokenizer/vae.safetensors --set prefix_embed=own init_residual_gain=1.0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from bench.learning.probe import _parse_sets
from depthcore.data.features import FeatureDataset
from depthcore.models import build_model, resolve_config
from depthcore.models.checkpoint import load_vae
from depthcore.spaces import rgb_to_model
from depthcore.training.losses import scale_balanced_loss
from depthcore.training.objectives import OBJECTIVES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--objective", default="var_tf")
    ap.add_argument("--zero-prefix", action="store_true")
    ap.add_argument("--set", nargs="*", default=[], help="VARConfig key=value")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model_cfg = resolve_config("tiny", var=_parse_sets(args.set))
    _, var = build_model(model_cfg)
    vae = load_vae(args.tokenizer, expected=model_cfg.vae).vae.eval()
    frames = FeatureDataset(Path(args.features) / "train.h5", fields=("fD", "prefix", "rgb"))
    batch = frames.get_batch(list(range(args.frames)))
    prefix_BLC, fD_BChw = batch["prefix_LC"].float(), batch["fD_Chw"].float()
    rgb_B3HW = rgb_to_model(batch["rgb_3SS"])
    if args.zero_prefix:
        prefix_BLC, rgb_B3HW = torch.zeros_like(prefix_BLC), torch.zeros_like(rgb_B3HW)
    opt = torch.optim.AdamW(var.parameters(), lr=args.lr, weight_decay=0.0)
    loss_fn = OBJECTIVES[args.objective]
    curve = []
    for step in range(args.steps + 1):
        out = loss_fn(vae, var, prefix_BLC, fD_BChw, rgb_B3HW=rgb_B3HW)
        if step % 20 == 0:
            curve.append({"step": step, "ce_K": [round(v, 3) for v in out.per_scale_loss.tolist()]})
            print(json.dumps(curve[-1]), flush=True)
        opt.zero_grad()
        scale_balanced_loss(out.ce_BL, var.begin_ends).backward()
        opt.step()


if __name__ == "__main__":
    main()
