"""Shared builders for the model tests (small, seeded)."""

from __future__ import annotations

from pathlib import Path

import torch

from depthcore.models import create_model, image_prefix

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"
VAE_TSV = REFERENCE / "var_vqvae_ch160v4096z32.keys.tsv"
VAR_TSV = REFERENCE / "var_d16.keys.tsv"


def read_keys_tsv(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """key -> (shape, dtype name) from a reference TSV (``#`` lines are comments)."""
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
        out[key] = (dims, dtype)
    return out


def described(sd: dict[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in sd.items()}


#: A fast timm backbone (370 k parameters) for tests of the pixel path.
TEST_PIXEL_ENCODER = "test_resnet"


def tiny_batch(B: int = 2, seed: int = 0, **overrides):
    """A tiny (vae, var) with non-trivial AdaLN gains, an image prefix and depth features.

    The transformer has no pixel path unless ``var={"pixel_encoder": ...}`` asks for one
    (these tests are about the prefix, the cache and the objectives; the pixel path has
    its own, :func:`tiny_pixel_batch`).
    """
    var_cfg = {"pixel_encoder": "", **overrides.pop("var", {})}
    return _tiny(B, seed, var=var_cfg, **overrides)[:4]


def tiny_pixel_batch(B: int = 2, seed: int = 0, **overrides):
    """:func:`tiny_batch` plus the frames ``rgb`` (B, 3, S, S) the prefix was made from;
    the pixel path is :data:`TEST_PIXEL_ENCODER` (its output projection opened)."""
    var_cfg = {"pixel_encoder": TEST_PIXEL_ENCODER, **overrides.pop("var", {})}
    return _tiny(B, seed, var=var_cfg, **overrides)


def _tiny(B: int, seed: int, **overrides):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    vae, var = create_model("tiny", **overrides)
    vae.eval()
    with torch.no_grad():  # make the blocks matter (VAR initialises their gains near 0)
        for block in var.blocks:
            block.ada_lin[-1].bias.normal_(0, 0.5, generator=gen)
        var.head.weight.normal_(0, 0.05, generator=gen)
        if var.reads_pixels:  # and the pixel path (it starts closed)
            var.condition.pixels.proj.weight.normal_(0, 0.05, generator=gen)
    size = vae.v_patch_nums[-1] * vae.downsample
    rgb = torch.rand(B, 3, size, size, generator=gen) * 2 - 1
    depth = torch.rand(B, 1, size, size, generator=gen).expand(B, 3, size, size) * 2 - 1
    prefix = image_prefix(vae, rgb)
    with torch.no_grad():
        fD = vae.encode_features(depth)
    return vae, var, prefix, fD, rgb
