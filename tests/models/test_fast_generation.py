"""The fast generation path against the plain one: same outputs in fp32, bounded error in bf16."""

from __future__ import annotations

import copy

import pytest
import torch

from depthcore.models import image_prefix
from depthcore.models.generate import (
    GREEDY,
    SamplingConfig,
    encode_image,
    filter_top_k_top_p,
    generate,
    prepare_for_inference,
    rollout,
)
from tests.helpers.models import tiny_batch

SAMPLED = SamplingConfig(top_k=100, top_p=0.9, num_samples=5, seed=3)
# bf16 tolerance (normalised space, values in [-1, 1]) on the tiny model: mean |delta| of
# the prediction; measured 0.006 on random weights, where near-uniform logits make
# token flips likeliest
BF16_MEAN_ABS_TOL = 0.02


def sort_filter(logits_NV: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """The textbook filter: full sort, keep ranks < k whose preceding mass is < p."""
    sorted_NV, order_NV = logits_NV.sort(dim=-1, descending=True)
    V = logits_NV.shape[-1]
    rank_NV = torch.arange(V).expand_as(sorted_NV)
    drop_sorted_NV = rank_NV >= (top_k if 0 < top_k < V else V)
    probs_NV = sorted_NV.masked_fill(drop_sorted_NV, -torch.inf).softmax(-1)
    drop_sorted_NV |= (probs_NV.cumsum(-1) - probs_NV) >= top_p
    drop_sorted_NV[..., 0] = False
    drop_NV = torch.zeros_like(drop_sorted_NV).scatter_(-1, order_NV, drop_sorted_NV)
    return logits_NV.masked_fill(drop_NV, -torch.inf)


@pytest.fixture(scope="module")
def models():
    vae, var, _, _ = tiny_batch(B=1, seed=11)
    gen = torch.Generator().manual_seed(12)
    rgb = torch.rand(3, 3, 64, 64, generator=gen) * 2 - 1
    return vae.requires_grad_(False), var.eval().requires_grad_(False), rgb


@pytest.mark.parametrize(("top_k", "top_p"), [(50, 1.0), (0, 0.9), (900, 0.9), (20, 0.3)])
def test_topk_filter_equals_full_sort_filter(top_k: int, top_p: float) -> None:
    logits_NV = torch.randn(64, 4096, generator=torch.Generator().manual_seed(top_k)) * 3
    assert torch.equal(
        filter_top_k_top_p(logits_NV, top_k, top_p), sort_filter(logits_NV, top_k, top_p)
    )


def test_prepared_fp32_generation_equals_plain(models) -> None:
    vae, var, rgb = models
    prefix = image_prefix(vae, rgb)
    plain = generate(vae, var, prefix, sampling=SAMPLED, return_scales=True)
    vae_f, var_f = copy.deepcopy(vae), copy.deepcopy(var)
    prepare_for_inference(vae_f, var_f)
    fast_prefix = encode_image(vae_f, rgb)
    torch.testing.assert_close(fast_prefix, prefix, rtol=0, atol=1e-5)
    fast = generate(vae_f, var_f, fast_prefix, sampling=SAMPLED, return_scales=True)
    torch.testing.assert_close(fast.pred_B1HW, plain.pred_B1HW, rtol=0, atol=1e-5)
    torch.testing.assert_close(fast.scales_K_B1HW, plain.scales_K_B1HW, rtol=0, atol=1e-5)


def test_repeats_share_the_prefix_pass_and_match_repeated_prefixes(models) -> None:
    vae, var, rgb = models
    prefix = image_prefix(vae, rgb)
    repeated = generate(vae, var, prefix.repeat_interleave(4, dim=0), sampling=SAMPLED)
    shared = generate(vae, var, prefix, sampling=SAMPLED, repeats=4)
    assert shared.pred_B1HW.shape == (12, 1, 64, 64)
    torch.testing.assert_close(shared.pred_B1HW, repeated.pred_B1HW, rtol=0, atol=1e-5)
    # the uncached reference path honours repeats the same way
    plain = rollout(vae, var, prefix, GREEDY, use_cache=False, repeats=2)
    cached = rollout(vae, var, prefix, GREEDY, repeats=2)
    for a, b in zip(plain.idx_Bl, cached.idx_Bl, strict=True):
        assert a.shape[0] == 6 and torch.equal(a, b)


def test_bf16_generation_within_stated_tolerance(models) -> None:
    vae, var, rgb = models
    prefix = image_prefix(vae, rgb)
    ref = generate(vae, var, prefix, sampling=SAMPLED).pred_B1HW
    vae_h, var_h = copy.deepcopy(vae), copy.deepcopy(var)
    prepare_for_inference(vae_h, var_h, torch.bfloat16)
    assert var_h.head.weight.dtype == torch.bfloat16
    fast_prefix = encode_image(vae_h, rgb, torch.bfloat16)
    torch.testing.assert_close(fast_prefix, prefix, rtol=0, atol=0.02)
    fast = generate(vae_h, var_h, fast_prefix, sampling=SAMPLED).pred_B1HW
    assert fast.dtype == torch.float32
    assert float((fast - ref).abs().mean()) <= BF16_MEAN_ABS_TOL
    # greedy: the coarse scales, which fix the layout, choose the same tokens (the first
    # two exactly; of the first three, a near-tie of this random model may flip one in ten)
    tokens = rollout(vae_h, var_h, prefix, GREEDY).idx_Bl
    ref_tokens = rollout(vae, var, prefix, GREEDY).idx_Bl
    for a, b in zip(tokens[:2], ref_tokens[:2], strict=True):
        assert torch.equal(a, b)
    same = torch.cat([(a == b).flatten() for a, b in zip(tokens[:3], ref_tokens[:3], strict=True)])
    assert float(same.float().mean()) >= 0.9


def test_the_frozen_adaln_modulation_never_outlives_its_weights(models) -> None:
    """prepare_for_inference computes the null-class AdaLN vectors once; a block must
    still follow its weights when they change in place (an optimizer step, a load) or
    when the model trains again."""
    vae, var, rgb = models
    vae_p, var_p = copy.deepcopy(vae), copy.deepcopy(var)
    prepare_for_inference(vae_p, var_p)
    assert all(b.frozen is not None for b in var_p.blocks) and var_p.head_nm.frozen is not None
    prefix = encode_image(vae_p, rgb)

    def logits(model) -> torch.Tensor:
        with torch.no_grad():
            return model(prefix, None, rgb)

    torch.testing.assert_close(logits(var_p), logits(var), rtol=0, atol=1e-5)
    with torch.no_grad():
        var_p.blocks[0].ada_lin[1].bias.add_(0.5)  # in place: same storage, new version
        var_p.head_nm.ada_lin[1].weight.mul_(2.0)
    fresh = copy.deepcopy(var_p)
    for module in (*fresh.blocks, fresh.head_nm):
        module.frozen = None  # computes from the (changed) weights on every call
    changed = logits(var_p)
    torch.testing.assert_close(changed, logits(fresh), rtol=0, atol=1e-5)
    assert (changed - logits(var)).abs().max() > 1e-2  # the change is visible
    for module in (*var_p.blocks, var_p.head_nm):
        module.frozen.value = torch.full_like(module.frozen.value, torch.nan)
    assert logits(var_p).isnan().any()  # eval mode, unchanged weights: the stored value is used
    var_p.train()
    assert logits(var_p).isfinite().all()  # training never reads it
