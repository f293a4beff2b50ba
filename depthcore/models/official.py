"""The released DepthART ``model.safetensors`` (github bulatko/DepthART) as our model.

The official file is the state dict of its ``DepthART`` module, saved by safetensors:
the transformer under VAR's names (``word_embed.*``, ``blocks.*`` ... without
``scale_mul_1H11``: DepthART attends with ``cos_attn: False``) and the frozen VQ-VAE under
``vae_proxy.*`` (the quantiser's second name, ``vae_quant_proxy.*``, is the same tensors
and stored once). No config is inside: the file is recognised by its keys
(:func:`is_official_depthart`), the model it implies (depth, width, vocabulary, token
count, attention variant) is checked against the expected config (``d16-depthart`` by
default) in one line, then both halves load strictly. The one tensor the file lacks,
DepthART's deleted ``attn_bias_for_masking``, is our derived mask buffer and keeps its
built value. The official target is ``2 z / q98(z) - 1`` (``NormalizerUTSQuant``,
affine 2, -1): space ``scale_depth``.

Tested without the download by tests/models/test_official_depthart.py against a file
the official code wrote (bench/official/make_depthart_fixture.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from depthcore.errors import CheckpointError
from depthcore.models.configs import MODEL_CONFIGS, ModelConfig

VAE_PREFIX = "vae_proxy."
SHARED_QUANT_PREFIX = "vae_quant_proxy."
#: Our buffers derived from the config that the official file does not hold.
DERIVED_KEYS = ("attn_bias_for_masking",)
#: What our tools need to know about a model the official file does not say.
OFFICIAL_META = {"space": "scale_depth", "input_fit": "stretch", "source": "official DepthART"}


def is_official_depthart(keys: Any) -> bool:
    """Whether a state dict's keys are the official DepthART file's (VQ-VAE inside)."""
    keys = set(keys)
    return "word_embed.weight" in keys and any(k.startswith(VAE_PREFIX) for k in keys)


def implied_config(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """What the tensors' shapes say about the model (only what they can say)."""
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    return {
        "depth": depth,
        "embed_dim": int(sd["word_embed.weight"].shape[0]),
        "z_channels": int(sd["word_embed.weight"].shape[1]),
        "vocab_size": int(sd["head.weight"].shape[0]),
        "tokens": int(sd["pos_1LC"].shape[1]) if "pos_1LC" in sd else -1,
        "attn_l2_norm": any(k.endswith("attn.scale_mul_1H11") for k in sd),
    }


def expected_implied(cfg: ModelConfig) -> dict[str, Any]:
    """:func:`implied_config` of a model built from ``cfg``."""
    return {
        "depth": cfg.var.depth,
        "embed_dim": cfg.var.embed_dim,
        "z_channels": cfg.vae.z_channels,
        "vocab_size": cfg.vae.vocab_size,
        "tokens": sum(pn * pn for pn in cfg.vae.v_patch_nums),
        "attn_l2_norm": cfg.var.attn_l2_norm,
    }


def split_official(
    sd: Mapping[str, torch.Tensor], path: Path, cfg: ModelConfig | None
) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(config, VQ-VAE tensors, transformer tensors) of an official file's state dict.

    ``cfg``: the model the file must be (None: ``d16-depthart``); a file implying another
    fails naming the file and every differing property.
    """
    if not is_official_depthart(sd):
        raise CheckpointError(
            f"{path}: not a DepthART model file (neither depthcore metadata nor the official "
            f"DepthART keys word_embed.weight and {VAE_PREFIX}*)"
        )
    cfg = MODEL_CONFIGS["d16-depthart"] if cfg is None else cfg
    found, wanted = implied_config(sd), expected_implied(cfg)
    differ = [f"{k} {found[k]} (expected {wanted[k]})" for k in wanted if found[k] != wanted[k]]
    if differ:
        raise CheckpointError(
            f"{path}: official DepthART file of another model: {', '.join(differ)}"
        )
    vae_sd = {k[len(VAE_PREFIX) :]: v for k, v in sd.items() if k.startswith(VAE_PREFIX)}
    var_sd = {k: v for k, v in sd.items() if not k.startswith((VAE_PREFIX, SHARED_QUANT_PREFIX))}
    return cfg, vae_sd, var_sd
