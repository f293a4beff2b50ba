"""A stand-in for the released DepthART ``model.safetensors``, from the OFFICIAL code.

Reads bulatko/DepthART's ``mde/models/train_models/var_utils`` at a pinned commit out of a
git checkout (nothing of theirs is copied into this repository), builds the official
``DepthART`` class at a small width with the official DepthART settings (``cos_attn:
False``, ``tau: 4``, ``shared_aln: False``, ``rec_loss: True``), fills every parameter with
seeded random values, and writes

- ``depthart_small.safetensors``: its state dict as ``safetensors.torch.save_model`` writes
  it (the official loader, ``init_from_ckpt``, reads the release with
  ``safetensors.torch.load_model``; shared tensors, ``vae_quant_proxy.*`` = the VQ-VAE's
  ``vae_proxy.quantize.*``, are stored once);
- ``depthart_small_io.safetensors``: a fixed image and depth batch and the teacher-forced
  logits of the official masked pass (``DepthVAR.forward_train``, the class DepthART
  extends, loaded with the same weights; eval mode) for them;
- ``depthart_d16.keys.tsv``: key, shape and dtype of the full-size d16 DepthART model's
  file, from a meta-device build (no weights, no download).

``pos_start`` is set to zero: the official teacher-forced pass adds no ``pos_start`` to
the SOS while every DepthART pass (training rollout and inference) adds it, as ours does;
at zero both readings agree, and these logits test everything else.

    git clone https://github.com/bulatko/DepthART /tmp/depthart_official
    python bench/official/make_depthart_fixture.py --repo /tmp/depthart_official \
        --out tests/fixtures/official_depthart
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch
from safetensors.torch import save_file, save_model

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True, help="a bulatko/DepthART git checkout")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        official = import_official(args.repo, Path(tmp))
        torch.manual_seed(SEED)
        art = build(official, SMALL, "DepthART").eval()
        gen = torch.Generator().manual_seed(SEED)
        with torch.no_grad():
            for _, p in sorted(art.named_parameters()):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            art.pos_start.zero_()  # see the module docstring
        path = args.out / "depthart_small.safetensors"
        save_model(art, str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as fh:  # the shared quantiser is stored once
            assert set(fh.keys()) == set(file_keys(art)), "unexpected shared-tensor naming"
        tf = build(official, SMALL, "DepthVAR").eval()
        missing, unexpected = tf.load_state_dict(art.state_dict(), strict=False)
        assert missing == ["attn_bias_for_masking"] and not unexpected, (missing, unexpected)
        size = SMALL["patch_nums"][-1] * 2 ** (len(SMALL["ch_mult"]) - 1)
        image = torch.rand(SMALL["batch"], 3, size, size, generator=gen) * 2 - 1
        depth = torch.rand(SMALL["batch"], 1, size, size, generator=gen) * 2 - 1
        batch = types.SimpleNamespace(image=image, target=depth)
        with torch.no_grad():
            logits = tf.forward_train(batch).pred
        save_file(
            {"image": image, "depth": depth, "tf_logits": logits.float().contiguous()},
            str(args.out / "depthart_small_io.safetensors"),
            metadata={"commit": COMMIT, "seed": str(SEED)},
        )
        linspace = torch.linspace  # its drop-path rule calls .item(): keep that one on CPU
        torch.linspace = functools.partial(linspace, device="cpu")
        try:
            with torch.device("meta"):
                d16 = build(official, D16, "DepthART")
        finally:
            torch.linspace = linspace
        lines = [f"# official DepthART d16 file keys (bulatko/DepthART {COMMIT[:7]})"]
        for k, v in sorted(file_keys(d16).items()):
            lines.append(f"{k}\t{tuple(v.shape)}\t{str(v.dtype).removeprefix('torch.')}")
        (args.out / "depthart_d16.keys.tsv").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
