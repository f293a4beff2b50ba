"""Models: the VAR tokenizer (VQVAE), the image-prefix DepthVAR transformer, their configs.

``create_model(name, **overrides)`` is the one factory; ``MODEL_CONFIGS`` lists the names.
"""

from __future__ import annotations

from typing import Any

from depthcore.models.configs import (
    MODEL_CONFIGS,
    ModelConfig,
    VARConfig,
    VQVAEConfig,
    phi_index_map,
    resolve_config,
)
from depthcore.models.prefix import image_prefix
from depthcore.models.var import DepthVAR
from depthcore.models.vqvae import VQVAE


def build_model(cfg: ModelConfig) -> tuple[VQVAE, DepthVAR]:
    """(vae, var) for a full :class:`ModelConfig` (e.g. one read from a checkpoint)."""
    vae = VQVAE.from_config(cfg.vae)
    var = DepthVAR.from_config(
        cfg.var, cfg.vae.vocab_size, cfg.vae.z_channels, cfg.vae.v_patch_nums, cfg.image_size
    )
    return vae, var


def create_model(name: str, **overrides: Any) -> tuple[VQVAE, DepthVAR]:
    """(vae, var) for a registered name, e.g. ``create_model("tiny", var={"depth": 3})``.

    Build under ``with torch.device("meta"):`` to get the shapes of a large model for free.
    """
    return build_model(resolve_config(name, **overrides))


__all__ = [
    "MODEL_CONFIGS",
    "DepthVAR",
    "ModelConfig",
    "VARConfig",
    "VQVAE",
    "VQVAEConfig",
    "build_model",
    "create_model",
    "image_prefix",
    "phi_index_map",
    "resolve_config",
]
