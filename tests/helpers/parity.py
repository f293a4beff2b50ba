"""The recipe both sides of the parity check follow: configs, weights, inputs, summaries.

The weights come from a procedure that belongs to neither codebase's initialisation:
every parameter is drawn from its own ``torch.Generator`` seeded by a hash of its
state_dict key, so the official modules and ours receive bit-identical tensors
whatever order or RNG calls their constructors make. Buffers (masks, level indices,
the zero k-bias, the codebook-hit statistics) are left as each side constructs them:
they are fixed by the architecture, and a mismatch there shows up in the outputs.

Values are chosen so every part of the network matters: fan-in scaled weights keep
activations O(1) through the 16 blocks, norm gains sit near 1, embeddings (class,
level, position) are unit-scale so the AdaLN gains are far from VAR's ~1e-5 init.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import torch
from torch import nn

# Both parity configurations, in the official constructors' vocabulary. The official
# VQVAE fixes ch_mult (1, 1, 2, 2, 4) and GroupNorm(32), so the small one shrinks
# ch, codebook and scales only (64 px input, 4x4 last latent).
PARITY_CONFIGS: dict[str, dict[str, Any]] = {
    "small": {
        "vae": {"vocab_size": 64, "z_channels": 8, "ch": 32, "v_patch_nums": (1, 2, 3, 4)},
        "var": {"depth": 2, "embed_dim": 128, "num_heads": 2, "num_classes": 10},
        "image_size": 64,
        "batch": 2,
    },
    "d16": {
        "vae": {
            "vocab_size": 4096,
            "z_channels": 32,
            "ch": 160,
            "v_patch_nums": (1, 2, 3, 4, 5, 6, 8, 10, 13, 16),
        },
        "var": {"depth": 16, "embed_dim": 1024, "num_heads": 16, "num_classes": 1000},
        "image_size": 256,
        "batch": 1,
    },
}

# Fixtures of large tensors keep this many leading elements and this many strided ones.
SUMMARY_HEAD = 2048
SUMMARY_STRIDED = 2048


def _key_generator(key: str, seed: int) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def parity_tensor(key: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The deterministic fp32 value of parameter ``key`` (see the module docstring)."""
    z = torch.randn(shape, generator=_key_generator(key, seed), dtype=torch.float32)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "scale_mul_1H11":  # log of the per-head q scale, around VAR's 4
        return z.mul_(0.1).add_(math.log(4.0))
    if any(part in key for part in ("class_emb", "lvl_embed", "pos_start", "pos_1LC")):
        return z
    if key == "quantize.embedding.weight":
        return z
    if len(shape) == 1:
        return z.mul_(0.1).add_(1.0) if leaf == "weight" else z.mul_(0.1)
    fan_in = math.prod(shape[1:])
    return z.div_(math.sqrt(fan_in))


@torch.no_grad()
def fill_parameters(module: nn.Module, seed: int) -> list[str]:
    """Overwrite every parameter of ``module`` with :func:`parity_tensor`; keys filled."""
    filled = []
    for key, param in sorted(module.named_parameters()):
        param.copy_(parity_tensor(key, tuple(param.shape), seed))
        filled.append(key)
    return filled


def parity_image(batch: int, size: int, seed: int) -> torch.Tensor:
    """A smooth-plus-noise RGB batch (B, 3, size, size) in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    coarse_B3hw = torch.rand(batch, 3, max(size // 8, 1), max(size // 8, 1), generator=gen)
    smooth = nn.functional.interpolate(coarse_B3hw, size=(size, size), mode="bilinear")
    noise = torch.rand(batch, 3, size, size, generator=gen)
    return (0.8 * smooth + 0.2 * noise) * 2 - 1


def summarise(name: str, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Fixture entries for a large tensor: leading and strided elements plus checksums."""
    flat = x.detach().double().flatten()
    step = max(flat.numel() // SUMMARY_STRIDED, 1)
    stats = torch.stack((flat.sum(), flat.abs().sum(), flat.square().sum(), flat.min(), flat.max()))
    return {
        f"{name}.head": flat[:SUMMARY_HEAD].float().numpy(),
        f"{name}.strided": flat[::step][:SUMMARY_STRIDED].float().numpy(),
        f"{name}.stats": stats.numpy(),
        f"{name}.shape": np.asarray(x.shape, dtype=np.int64),
    }
