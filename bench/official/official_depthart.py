"""The official DepthART code (bulatko/DepthART), imported from a git checkout, and its inference.

Shared by ``make_depthart_fixture.py`` (the released-file stand-in and its reference outputs)
and ``bench/bench_generate.py --official-depthart`` (speed against the official sampler).
Nothing of the official code is copied into this repository: :func:`import_official` reads
its files at :data:`COMMIT` out of the checkout the user gives.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import torch

COMMIT = "b2bc09319e9f3b87e461889a0a1c6166f5726b56"
PACKAGE = "mde/models/train_models/var_utils"
FILES = ("__init__", "basic_vae", "basic_var", "depth_var", "depthart", "helpers", "quant",
         "utils", "vqvae")  # fmt: skip
SEED = 20241028
#: The small model of the fixture (the official d16 layout at a width that keeps it < 5 MB).
SMALL = {
    "patch_nums": (1, 2, 3, 4), "depth": 2, "embed_dim": 64, "num_heads": 4, "vocab_size": 64,
    "z_channels": 8, "ch": 32, "ch_mult": (1, 1), "num_res_blocks": 1, "batch": 2,
}  # fmt: skip
D16 = {
    "patch_nums": (1, 2, 3, 4, 5, 6, 8, 10, 13, 16), "depth": 16, "embed_dim": 1024,
    "num_heads": 16, "vocab_size": 4096, "z_channels": 32, "ch": 160,
    "ch_mult": (1, 1, 2, 2, 4), "num_res_blocks": 2,
}  # fmt: skip


def import_official(repo: Path, workdir: Path) -> types.ModuleType:
    """The official ``var_utils`` package at :data:`COMMIT`, imported on its own (its parent
    packages pull in training and dataset code this needs none of)."""
    pkg = workdir / "var_utils"
    pkg.mkdir()
    for name in FILES:
        src = subprocess.run(
            ["git", "-C", str(repo), "show", f"{COMMIT}:{PACKAGE}/{name}.py"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        (pkg / f"{name}.py").write_bytes(src)
    spec = importlib.util.spec_from_file_location(
        "var_utils", pkg / "__init__.py", submodule_search_locations=[str(pkg)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["var_utils"] = module
    spec.loader.exec_module(module)
    return module


def build(official: types.ModuleType, cfg: dict, cls: str) -> torch.nn.Module:
    """The official ``cls`` (DepthART or DepthVAR) with the DepthART settings."""
    vae = official.VQVAE(
        ddconfig={"dropout": 0.0, "z_channels": cfg["z_channels"], "num_res_blocks":
                  cfg["num_res_blocks"], "in_channels": 3, "ch": cfg["ch"],
                  "ch_mult": list(cfg["ch_mult"]), "using_mid_sa": True, "using_sa": True},
        quantconfig={"using_znorm": False, "beta": 0.25, "resiconfig": {
            "quant_resi": 0.5, "share_quant_resi": 4, "default_qresi_counts": 0}},
        vocab_size=cfg["vocab_size"], v_patch_nums=cfg["patch_nums"],
    )  # fmt: skip
    kwargs = {"rec_loss": True} if cls == "DepthART" else {}
    return getattr(official, cls)(
        vae_local=vae, num_classes=1000, shared_aln=False, depth=cfg["depth"],
        embed_dim=cfg["embed_dim"], drop_path_rate=0.06666666666666667,
        patch_nums=cfg["patch_nums"], normalizer=lambda z: z,
        BlockConfig={"num_heads": cfg["num_heads"], "mlp_ratio": 4.0, "drop": 0.0,
                     "attn_drop": 0.0, "tau": 4, "cos_attn": False},
        flash_if_available=False, fused_if_available=False, **kwargs,
    )  # fmt: skip


def file_keys(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as the file holds it: the quantiser's second name dropped."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("vae_quant_proxy.")}


@contextlib.contextmanager
def official_greedy(official: types.ModuleType) -> Iterator[list[torch.Tensor]]:
    """Make the official sampler greedy while inside; yields the tokens it chose per scale.

    The official ``autoregressive_infer_cfg`` hard-codes top-k 900 / top-p 0.9 / 5 samples.
    With top-k 1 every draw is the argmax (the mean of five equal embeddings is that
    embedding), which is our greedy decoding: the setting in which both must agree.
    """
    module = sys.modules[f"{official.__name__}.depthart"]
    sample = module.sample_with_top_k_top_p_
    chosen: list[torch.Tensor] = []

    def greedy(logits_BlV, rng=None, top_k=0, top_p=0.0, num_samples=1):  # noqa: ANN001, ANN202
        idx_BlS = sample(logits_BlV, rng=rng, top_k=1, top_p=0.0, num_samples=num_samples)
        chosen.append(idx_BlS[..., 0].clone())
        return idx_BlS

    module.sample_with_top_k_top_p_ = greedy
    try:
        yield chosen
    finally:
        module.sample_with_top_k_top_p_ = sample


def official_depth(art: torch.nn.Module, rgb_B3HW: torch.Tensor) -> torch.Tensor:
    """The official inference's depth (B, 1, H, W) in [-1, 1]: its decoded [0, 1] image
    mapped back, channels averaged, as our predictor reads a decoded map."""
    img_B3HW = art.autoregressive_infer_cfg(rgb_B3HW.shape[0], rgb_B3HW)
    return img_B3HW.mul(2).sub(1).mean(dim=1, keepdim=True)
