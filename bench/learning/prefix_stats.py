"""Scale and statistics of the image prefix against the depth inputs the transformer sees.

Per scale k: RMS of the prefix tokens (cumulative RGB f_hat resized to pn_k), of the
teacher-forced depth inputs (cumulative depth f_hat of scales < k, resized to pn_k), and
their cosine similarity across frames. Usage::

    python -m bench.learning.prefix_stats --features data/features \\
        --tokenizer models/tokenizer/vae.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from depthcore.data.features import FeatureDataset
from depthcore.models.checkpoint import load_vae


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--frames", type=int, default=64)
    args = ap.parse_args()
    vae = load_vae(args.tokenizer).vae.eval()
    ds = FeatureDataset(Path(args.features) / "train.h5")
    batch = ds.get_batch(list(range(min(args.frames, len(ds)))))
    prefix_BLC, fD_BChw = batch["prefix_LC"].float(), batch["fD_Chw"].float()
    x_BlC = vae.idxBl_to_var_input(vae.f_to_idxBl(fD_BChw))
    rows = []
    for si, pn in enumerate(vae.v_patch_nums):
        s = sum(p * p for p in vae.v_patch_nums[:si])
        pre_BlC = prefix_BLC[:, s : s + pn * pn]
        row = {"scale": si, "pn": pn, "prefix_rms": float(pre_BlC.pow(2).mean().sqrt())}
        row["prefix_frame_std"] = float(pre_BlC.std(dim=0).mean())
        if si > 0:
            dep_BlC = x_BlC[:, s - 1 : s - 1 + pn * pn]
            row["depth_in_rms"] = float(dep_BlC.pow(2).mean().sqrt())
            row["depth_in_frame_std"] = float(dep_BlC.std(dim=0).mean())
            cos = torch.nn.functional.cosine_similarity(pre_BlC, dep_BlC, dim=-1)
            row["cos_prefix_depth"] = float(cos.mean())
        rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    print(json.dumps({"fD_rms": round(float(fD_BChw.pow(2).mean().sqrt()), 4), "scales": rows}))


if __name__ == "__main__":
    main()
