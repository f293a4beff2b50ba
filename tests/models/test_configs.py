"""Model configs: the registry, overrides, validation, and the params-file round trip."""

from __future__ import annotations

import pytest

from depthcore.config import ConfigError, from_dict, to_dict
from depthcore.models import MODEL_CONFIGS, ModelConfig, VQVAEConfig, create_model, resolve_config


def test_tiny_is_the_documented_cpu_layout() -> None:
    cfg = MODEL_CONFIGS["tiny"]
    assert cfg.image_size == 64 and cfg.vae.downsample == 8
    assert cfg.vae.v_patch_nums == (1, 2, 3, 4, 6, 8)
    assert sum(pn * pn for pn in cfg.vae.v_patch_nums) == 130


def test_d16_is_the_official_layout() -> None:
    cfg = MODEL_CONFIGS["d16"]
    assert (cfg.vae.vocab_size, cfg.vae.z_channels, cfg.vae.ch, cfg.vae.share_quant_resi) == (
        4096,
        32,
        160,
        4,
    )
    assert cfg.var.embed_dim == 64 * cfg.var.depth and cfg.var.num_heads == cfg.var.depth


def test_overrides_and_their_errors() -> None:
    vae, var = create_model("tiny", var={"depth": 2})
    assert len(var.blocks) == 2 and var.config.depth == 2
    with pytest.raises(KeyError, match="unknown model 'd17'.*d16, d16-depthart, tiny"):
        create_model("d17")
    with pytest.raises(KeyError, match="unknown override"):
        resolve_config("tiny", width=3)
    with pytest.raises(TypeError):
        resolve_config("tiny", var={"dept": 3})
    with pytest.raises(ValueError, match="last patch_num"):
        resolve_config("tiny", image_size=128)
    with pytest.raises(ValueError, match="norm_groups"):
        VQVAEConfig(ch=12, norm_groups=8)


def test_config_round_trips_through_plain_data() -> None:
    for cfg in MODEL_CONFIGS.values():
        assert from_dict(ModelConfig, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="vae.vocab"):
        from_dict(ModelConfig, {"vae": {"vocab": 3}})
