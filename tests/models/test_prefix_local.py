"""The optional local image path: an extra Linear, the same results on every pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depthcore.models import build_model, resolve_config
from depthcore.models.checkpoint import load_official_var
from depthcore.models.generate import GREEDY, SamplingConfig, rollout
from depthcore.training.objectives import OBJECTIVES
from tests.helpers.models import tiny_batch

SMALL = {"depth": 2, "embed_dim": 64, "num_heads": 2, "prefix_local": False}  # official layout


@pytest.fixture(scope="module")
def batch():
    vae, var, prefix, fD = tiny_batch(B=2, seed=7, var={"prefix_local": True})
    with torch.no_grad():  # a path strong enough to change the argmax tokens
        var.condition.local.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(1))
    return vae, var.eval(), prefix, fD


def test_official_layout_loads_and_only_the_path_is_extra(tmp_path: Path) -> None:
    torch.manual_seed(0)
    _, official = build_model(resolve_config("tiny", var=SMALL))
    path = tmp_path / "var_official_layout.pth"
    torch.save(official.state_dict(), path)
    cfg = resolve_config("tiny", var={**SMALL, "prefix_local": True})
    var = load_official_var(path, cfg.var, cfg.vae)
    extra = set(var.state_dict()) - set(official.state_dict())
    assert extra == {"condition.local.weight", "condition.local.bias"}
    for k, v in official.state_dict().items():
        torch.testing.assert_close(var.state_dict()[k], v)


def test_the_path_changes_the_depth_logits(batch) -> None:
    vae, var, prefix, fD = batch
    x_BlCv = vae.idxBl_to_var_input(vae.f_to_idxBl(fD))
    with_path = var(prefix, x_BlCv)
    saved = var.condition.local
    try:
        var.condition.local = None
        without = var(prefix, x_BlCv)
    finally:
        var.condition.local = saved
    assert (with_path - without).abs().max() > 1e-2


def test_cached_generation_equals_the_parallel_pass(batch) -> None:
    """Cached steps add the path at their own positions; per-image repeats copy it
    with the prefix's keys/values (test_generate checks the default layout greedily)."""
    vae, var, prefix, _ = batch
    sampling = SamplingConfig(num_samples=1, top_k=0, top_p=1.0)
    gen = torch.Generator().manual_seed(0)
    rep = rollout(vae, var, prefix, sampling, repeats=3, generator=gen)
    gen = torch.Generator().manual_seed(0)
    ref = rollout(
        vae, var, prefix.repeat_interleave(3, 0), sampling, use_cache=False, generator=gen
    )
    for a, b in zip(rep.idx_Bl, ref.idx_Bl, strict=True):
        assert torch.equal(a, b)


def test_depthart_loss_through_the_shared_prefix_cache(batch) -> None:
    """DepthART's loss pass over the prefix cache equals the plain masked pass."""
    vae, var, prefix, fD = batch
    out = OBJECTIVES["depthart"](vae, var, prefix, fD)
    pred = rollout(vae, var, prefix, GREEDY).idx_Bl
    logits = var(prefix, vae.idxBl_to_var_input(pred))
    cache, context = var.new_cache(), var.image_context(prefix)
    var.fill_prefix(context, cache)
    after = var.depth_after_prefix(vae.idxBl_to_var_input(pred), cache, context)
    torch.testing.assert_close(after, logits, rtol=1e-4, atol=1e-5)
    assert torch.isfinite(out.loss)
