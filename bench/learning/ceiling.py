"""What the tokens allow, before any transformer: per-scale ceilings and a retrieval probe.

On the val frames: AbsRel after each scale when the transformer would predict the
frame's OWN depth tokens (the teacher-forced ceiling per scale); AbsRel of copying the
depth tokens of the nearest TRAIN frame by image prefix and by raw RGB (does the prefix
carry depth information a model could use?). On the train frames: distinct codes and
entropy (nats) of the code marginal per scale. Usage::

    python -m bench.learning.ceiling --features data/features \\
        --tokenizer models/tokenizer/vae.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from depthcore.alignment import align_lsq
from depthcore.data.features import FeatureDataset
from depthcore.evaluation.metrics import compute_metrics
from depthcore.evaluation.scales import VAL_DEPTH_RANGE
from depthcore.models.checkpoint import load_vae
from depthcore.models.generate import decode_depth

FIELDS = ("fD", "prefix", "rgb", "depth", "mask")


def _abs_rel(pred_BHW: torch.Tensor, batch: dict, space: str) -> float:
    scores = []
    for j in range(pred_BHW.shape[0]):
        depth, mask = batch["depth_SS"][j].numpy(), batch["mask_SS"][j].numpy()
        if mask.any():
            aligned = align_lsq(pred_BHW[j].numpy(), depth, mask, space, *VAL_DEPTH_RANGE)
            scores.append(compute_metrics(aligned, depth, mask)["abs_rel"])
    return round(float(np.mean(scores)), 4)


def _nearest(query_BD: torch.Tensor, bank_ND: torch.Tensor) -> torch.Tensor:
    q = torch.nn.functional.normalize(query_BD, dim=1)
    b = torch.nn.functional.normalize(bank_ND, dim=1)
    return (q @ b.T).argmax(dim=1)


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--frames", type=int, default=32)
    args = ap.parse_args()
    vae = load_vae(args.tokenizer).vae.eval()
    train = FeatureDataset(Path(args.features) / "train.h5", fields=FIELDS)
    val = FeatureDataset(Path(args.features) / "val.h5", fields=FIELDS)
    space = str(val.attrs["space"])
    tb = train.get_batch(list(range(len(train))))
    vb = val.get_batch(list(range(min(args.frames, len(val)))))
    quant = vae.quantize
    idx_K = vae.f_to_idxBl(vb["fD_Chw"].float())
    ceiling = []
    for k in range(len(idx_K)):
        f_hat = torch.zeros_like(vb["fD_Chw"].float())
        for si in range(k + 1):
            pn = vae.v_patch_nums[si]
            f_hat = f_hat + quant.upsample_phi(si, quant.embed_map(idx_K[si], pn))
        ceiling.append(_abs_rel(decode_depth(vae, f_hat)[:, 0], vb, space))
    out = {"val_frames": int(vb["fD_Chw"].shape[0]), "ceiling_abs_rel_K": ceiling}
    for name, key in (("prefix", "prefix_LC"), ("rgb", "rgb_3SS")):
        nn_B = _nearest(vb[key].flatten(1).float(), tb[key].flatten(1).float())
        f_nn = tb["fD_Chw"][nn_B].float()
        f_hat = quant.f_to_fhats(f_nn)[-1]
        out[f"nn_by_{name}_abs_rel"] = _abs_rel(decode_depth(vae, f_hat)[:, 0], vb, space)
    train_idx_K = vae.f_to_idxBl(tb["fD_Chw"].float())
    usage = []
    for idx_Bl in train_idx_K:
        counts = torch.bincount(idx_Bl.flatten(), minlength=quant.vocab_size).float()
        p = counts[counts > 0] / counts.sum()
        entropy = round(float(-(p * p.log()).sum()), 3)
        usage.append({"codes": int((counts > 0).sum()), "entropy": entropy})
    out["train_code_usage_K"] = usage
    print(json.dumps(out))


if __name__ == "__main__":
    main()
