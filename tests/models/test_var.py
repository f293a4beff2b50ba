"""DepthVAR: the prefix mask, the KV cache, and every registered model's forward/backward."""

from __future__ import annotations

import pytest
import torch

from depthcore.models import MODEL_CONFIGS, create_model, image_prefix
from depthcore.training.objectives import OBJECTIVES
from tests.helpers.models import tiny_batch


@pytest.fixture(scope="module")
def batch():
    return tiny_batch(B=2)


def test_kv_cached_logits_equal_full_masked_forward(batch) -> None:
    vae, var, prefix, fD = batch
    var.eval()
    idx = vae.f_to_idxBl(fD)
    x_BlCv = vae.idxBl_to_var_input(idx)
    with torch.no_grad():
        full_BLV = var(prefix, x_BlCv)
        cache = var.new_cache()
        context = var.image_context(prefix)
        steps = [var.start_cached(context, cache)]
        for si in range(1, len(var.patch_nums)):
            start, end = var.begin_ends[si]
            steps.append(var.step_cached(si, x_BlCv[:, start - 1 : end - 1], cache, context))
    assert cache.length == 2 * var.L
    torch.testing.assert_close(torch.cat(steps, 1), full_BLV, rtol=0, atol=1e-4)


def test_mask_depth_is_block_causal_and_sees_the_image(batch) -> None:
    vae, var, prefix, fD = batch
    var.eval()
    x_BlCv = vae.idxBl_to_var_input(vae.f_to_idxBl(fD))
    with torch.no_grad():
        base = var(prefix, x_BlCv)
        # changing the inputs of the last scale changes only the last scale's logits
        start, _ = var.begin_ends[-1]
        x2 = x_BlCv.clone()
        x2[:, start - 1 :] += 1.0
        changed = var(prefix, x2)
        torch.testing.assert_close(changed[:, :start], base[:, :start], rtol=0, atol=1e-5)
        assert (changed[:, start:] - base[:, start:]).abs().max() > 1e-2
        # the image prefix conditions every scale, the first one included
        other = var(prefix.flip(0), x_BlCv)
        assert (other[:, 0] - base[:, 0]).abs().max() > 1e-4


def test_prefix_attn_bias_layout(batch) -> None:
    _, var, _, _ = batch
    n = var.L
    bias = var.prefix_attn_bias(n)[0, 0]
    L = var.L
    assert bool((bias[:L, :L] == 0).all())  # image <-> image: full
    assert bool(torch.isinf(bias[:L, L:]).all())  # image never sees depth
    assert bool((bias[L:, :L] == 0).all())  # depth sees the whole image
    assert bool(torch.isinf(bias[L, L + 1 :]).all()) and bias[L, L] == 0  # SOS sees itself only
    assert bool((bias[-1, L:] == 0).all())  # the last scale sees all depth tokens


@pytest.mark.parametrize("name", sorted(MODEL_CONFIGS))
def test_every_model_forward_backward_no_nan(name) -> None:
    """Each registered model, scaled down in width and depth but with its own layout."""
    d16_small = {
        "vae": {"ch": 32, "vocab_size": 256, "z_channels": 8},
        "var": {"depth": 2, "embed_dim": 64, "num_heads": 2},
    }
    small = d16_small if name.startswith("d16") else {}  # tiny and its ablations: as they are
    torch.manual_seed(0)
    vae, var = create_model(name, **small)
    size = MODEL_CONFIGS[name].image_size
    gen = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, size, size, generator=gen) * 2 - 1
    prefix = image_prefix(vae, rgb)
    with torch.no_grad():
        fD = vae.encode_features(rgb.mean(1, keepdim=True).expand(-1, 3, -1, -1))
    for objective in OBJECTIVES.values():
        out = objective(vae, var, prefix, fD, rgb_B3HW=rgb)  # tiny reads the pixels too
        assert out.logits_BLV.shape == (1, var.L, vae.vocab_size)
        assert torch.isfinite(out.logits_BLV).all() and torch.isfinite(out.loss)
        out.loss.backward()
        grads = [p.grad for p in var.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert all(p.grad is None for p in vae.parameters())  # the tokenizer stays frozen
        var.zero_grad(set_to_none=True)


def test_d16_full_size_shapes_on_meta() -> None:
    with torch.device("meta"):
        vae, var = create_model("d16")
        prefix = torch.empty(2, var.L, vae.Cvae)
        x_BlCv = torch.empty(2, var.L - 1, vae.Cvae)
        logits = var(prefix, x_BlCv)
        f = vae.encode_features(torch.empty(2, 3, 256, 256))
    assert var.L == 680 and logits.shape == (2, 680, 4096)
    assert f.shape == (2, 32, 16, 16)


@pytest.mark.gpu
def test_kv_cache_matches_full_forward_on_cuda(batch) -> None:
    vae, var, prefix, fD = batch
    var_gpu = var.to("cuda").eval()
    prefix_gpu = prefix.to("cuda")
    x_BlCv = vae.idxBl_to_var_input(vae.f_to_idxBl(fD)).to("cuda")
    with torch.no_grad():
        full_BLV = var_gpu(prefix_gpu, x_BlCv)
        cache = var_gpu.new_cache()
        context = var_gpu.image_context(prefix_gpu)
        steps = [var_gpu.start_cached(context, cache)]
        for si in range(1, len(var_gpu.patch_nums)):
            start, end = var_gpu.begin_ends[si]
            x_next = x_BlCv[:, start - 1 : end - 1]
            steps.append(var_gpu.step_cached(si, x_next, cache, context))
    var.to("cpu")
    # GPU attention kernels reorder reductions: a slightly looser tolerance than on CPU
    torch.testing.assert_close(torch.cat(steps, 1), full_BLV, rtol=0, atol=1e-3)
