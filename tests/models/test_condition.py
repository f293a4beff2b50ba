"""The image condition as one module: legacy checkpoints, the official DepthART mask and
attention options (VARConfig.prefix_sees_sos, attn_l2_norm=False with attn_tau)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from depthcore.config import to_dict
from depthcore.models import MODEL_CONFIGS, resolve_config
from depthcore.models.checkpoint import CONFIG_KEY, load_model, load_official_var, save_model
from depthcore.models.condition import remap_legacy_keys
from depthcore.models.generate import GREEDY, rollout
from depthcore.training.depthart import depthart_loss
from tests.helpers.models import tiny_batch

DEPTHART_ATTN = {"attn_l2_norm": False, "attn_tau": 4.0, "prefix_sees_sos": True}


def test_legacy_names_map_to_the_condition() -> None:
    old = {"prefix_type_emb": 1, "prefix_word_embed.weight": 2, "prefix_local.bias": 3,
           "pixel_encoder.proj.weight": 4, "word_embed.weight": 5, "prefix_localx": 6}  # fmt: skip
    assert remap_legacy_keys(old) == {
        "condition.type_emb": 1, "condition.word_embed.weight": 2, "condition.local.bias": 3,
        "condition.pixels.proj.weight": 4, "word_embed.weight": 5, "prefix_localx": 6,
    }  # fmt: skip


def test_a_checkpoint_with_the_old_names_loads(tmp_path: Path) -> None:
    """Files written before the condition was one module (``var.prefix_local.*``...)."""
    vae, var, _, _ = tiny_batch(var={"prefix_embed": "own"})
    cfg = resolve_config("tiny", var={"pixel_encoder": "", "prefix_embed": "own"})
    new = tmp_path / "new.safetensors"
    save_model(new, vae, var, cfg)
    tensors = load_file(str(new))
    legacy = {k.replace("var.condition.local.", "var.prefix_local.")
               .replace("var.condition.type_emb", "var.prefix_type_emb")
               .replace("var.condition.word_embed.", "var.prefix_word_embed."): v
              for k, v in tensors.items()}  # fmt: skip
    assert "var.prefix_local.weight" in legacy and "var.prefix_type_emb" in legacy
    old = tmp_path / "old.safetensors"
    save_file(legacy, str(old), metadata={CONFIG_KEY: json.dumps(to_dict(cfg))})
    loaded = load_model(old, expected=cfg)
    for k, v in var.state_dict().items():
        assert torch.equal(loaded.var.state_dict()[k], v), k


def test_tau_sets_the_plain_attention_scale() -> None:
    _, var, _, _ = tiny_batch(var={"attn_l2_norm": False, "attn_tau": 2.0})
    attn = var.blocks[0].attn
    assert attn.scale == 1 / (2.0 * math.sqrt(attn.head_dim))
    assert not any("scale_mul" in k for k in var.state_dict())
    with pytest.raises(ValueError, match="attn_tau"):
        resolve_config("tiny", var={"attn_tau": 0.0})


def test_the_official_mask_lets_image_tokens_see_the_sos() -> None:
    _, ours, _, _ = tiny_batch()
    _, official, _, _ = tiny_batch(var={"prefix_sees_sos": True})
    L, n = ours.L, 5
    ours_bias, official_bias = ours.prefix_attn_bias(n)[0, 0], official.prefix_attn_bias(n)[0, 0]
    assert torch.isinf(ours_bias[:L, L:]).all()  # image rows: no depth column
    assert (official_bias[:L, L : L + official.first_l] == 0).all()  # ... but the SOS
    assert torch.isinf(official_bias[:L, L + official.first_l :]).all()
    assert torch.equal(official_bias[L:], ours_bias[L:])  # depth rows unchanged


@pytest.fixture(scope="module")
def depthart_attn():
    vae, var, prefix, fD = tiny_batch(B=2, seed=3, var=DEPTHART_ATTN)
    return vae, var.eval(), prefix, fD


def test_official_mask_cached_and_parallel_passes_agree(depthart_attn) -> None:
    """The cached rollout (prefix + SOS unmasked, as the official inference) equals the
    masked parallel pass, and the image tokens' outputs depend on the SOS."""
    vae, var, prefix, fD = depthart_attn
    own = rollout(vae, var, prefix, GREEDY)
    x_BlCv = own.x_BlCv
    with torch.no_grad():
        logits = var(prefix, x_BlCv)
        plain = rollout(vae, var, prefix, GREEDY, use_cache=False)
    for a, b in zip(own.idx_Bl, plain.idx_Bl, strict=True):
        assert torch.equal(a, b)
    torch.testing.assert_close(logits.argmax(-1), torch.cat(own.idx_Bl, 1))
    # the DepthART loss pass over the prefix cache (SOS keys dropped, recomputed) == var()
    cache, context = var.new_cache(), var.image_context(prefix)
    with torch.no_grad():
        var.fill_prefix(context, cache)
        assert cache.length == var.L
        after = var.depth_after_prefix(x_BlCv, cache, context)
    torch.testing.assert_close(after, logits, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # the SOS reaches the image tokens: shifting it changes them
        shift = torch.randn(var.pos_start.shape, generator=torch.Generator().manual_seed(0))
        var.pos_start.add_(shift)  # (a constant shift would vanish in the LayerNorms)
        shifted = var.new_cache()
        var.fill_prefix(context, shifted)
        var.pos_start.sub_(shift)
    diff = shifted.layers[-1].k_BHlc - cache.layers[-1].k_BHlc[:, :, : var.L]
    assert diff.abs().max() > 1e-3


def test_depthart_loss_runs_with_the_official_attention(depthart_attn) -> None:
    vae, var, prefix, fD = depthart_attn
    out = depthart_loss(vae, var, prefix, fD)
    out.loss.backward()
    assert torch.isfinite(out.loss) and var.pos_start.grad.abs().sum() > 0


def test_d16_depthart_is_d16_with_the_official_settings() -> None:
    d16, art = MODEL_CONFIGS["d16"], MODEL_CONFIGS["d16-depthart"]
    assert art.vae == d16.vae and art.image_size == d16.image_size
    assert (art.var.attn_l2_norm, art.var.attn_tau, art.var.prefix_sees_sos) == (False, 4.0, True)
    assert art.var.drop_path_rate == pytest.approx(0.0666666666667)
    assert d16.var.attn_l2_norm and not d16.var.prefix_sees_sos  # our d16 stays VAR's


def test_var_weights_load_into_the_depthart_attention_dropping_only_scale_mul(
    tmp_path: Path,
) -> None:
    """As the official DepthART code initialises from var_d16.pth (strict=False)."""
    small = {
        "depth": 2,
        "embed_dim": 64,
        "num_heads": 2,
        "prefix_local": False,
        "pixel_encoder": "",
    }
    _, var = tiny_batch(var=small)[:2]
    path = tmp_path / "var.pth"
    torch.save(var.state_dict(), path)
    cfg = resolve_config("tiny", var={**small, **DEPTHART_ATTN})
    art = load_official_var(path, cfg.var, cfg.vae)
    dropped = set(var.state_dict()) - set(art.state_dict())
    assert dropped == {f"blocks.{i}.attn.scale_mul_1H11" for i in range(2)}
    for k, v in art.state_dict().items():
        assert torch.equal(v, var.state_dict()[k]), k
