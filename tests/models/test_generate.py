"""Generation: cache vs no cache, sampling filters, determinism, output layout."""

from __future__ import annotations

import math

import pytest
import torch

from depthcore.models.generate import (
    EXPECTED,
    GREEDY,
    SamplingConfig,
    choose_tokens,
    filter_top_k_top_p,
    generate,
    rollout,
    sampling_for,
)
from tests.helpers.models import tiny_batch


@pytest.fixture(scope="module")
def batch():
    vae, var, prefix, fD = tiny_batch(B=2, seed=5)
    return vae, var.eval(), prefix, fD


def test_greedy_generation_same_with_and_without_cache(batch) -> None:
    vae, var, prefix, _ = batch
    cached = rollout(vae, var, prefix, GREEDY, use_cache=True)
    plain = rollout(vae, var, prefix, GREEDY, use_cache=False)
    for a, b in zip(cached.idx_Bl, plain.idx_Bl, strict=True):
        assert torch.equal(a, b)
    torch.testing.assert_close(cached.f_hat_BChw, plain.f_hat_BChw, rtol=0, atol=1e-5)
    # and the rollout's f_hat is the quantiser's reconstruction of its own tokens
    torch.testing.assert_close(
        cached.f_hat_BChw, vae.quantize.idxBl_to_fhat(cached.idx_Bl), rtol=0, atol=1e-5
    )


def test_generate_layout_and_scales(batch) -> None:
    vae, var, prefix, _ = batch
    gen = generate(vae, var, prefix, sampling=GREEDY, return_scales=True)
    K = len(vae.v_patch_nums)
    assert gen.pred_B1HW.shape == (2, 1, 64, 64)
    assert gen.scales_K_B1HW.shape == (K, 2, 1, 64, 64)
    torch.testing.assert_close(gen.scales_K_B1HW[-1], gen.pred_B1HW)
    assert float(gen.pred_B1HW.abs().max()) <= 1.0
    assert generate(vae, var, prefix, sampling=GREEDY).scales_K_B1HW is None


def test_sampling_is_seeded_and_differs_from_greedy(batch) -> None:
    vae, var, prefix, _ = batch
    sampling = SamplingConfig(top_k=50, top_p=0.95, num_samples=3, seed=7)
    a = generate(vae, var, prefix, sampling=sampling).pred_B1HW
    b = generate(vae, var, prefix, sampling=sampling).pred_B1HW
    c = generate(vae, var, prefix, sampling=SamplingConfig(top_k=50, seed=8)).pred_B1HW
    g = generate(vae, var, prefix, sampling=GREEDY).pred_B1HW
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, g)


def test_top_k_top_p_filter_by_hand() -> None:
    probs = torch.tensor([[0.5, 0.25, 0.15, 0.1]])
    logits = probs.log()
    keep = lambda out: torch.isfinite(out).tolist()[0]  # noqa: E731
    assert keep(filter_top_k_top_p(logits, top_k=2, top_p=1.0)) == [True, True, False, False]
    # nucleus 0.7: 0.5 (< .7 before it) and 0.25 (.5 before it) stay; 0.15 has .75 before it
    assert keep(filter_top_k_top_p(logits, top_k=0, top_p=0.7)) == [True, True, False, False]
    assert keep(filter_top_k_top_p(logits, top_k=0, top_p=0.8)) == [True, True, True, False]
    # the most likely token always survives
    assert keep(filter_top_k_top_p(logits, top_k=0, top_p=0.1)) == [True, False, False, False]
    # filtering keeps the survivors' logits unchanged
    out = filter_top_k_top_p(logits, top_k=3, top_p=1.0)
    assert out[0, 0] == pytest.approx(math.log(0.5))


def test_samples_are_averaged_in_embedding_space(batch) -> None:
    vae, _, _, _ = batch
    logits = torch.full((1, 1, vae.vocab_size), -1e4)
    logits[0, 0, 3] = logits[0, 0, 7] = 0.0  # two equally likely codes
    sampling = SamplingConfig(top_k=0, top_p=1.0, num_samples=400)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        _, h = choose_tokens(vae, logits, sampling, gen)
    codes = vae.quantize.embedding.weight.detach()
    torch.testing.assert_close(
        h[0, 0],
        (codes[3] + codes[7]) / 2,
        rtol=0,
        atol=0.1 * float((codes[3] - codes[7]).abs().max()),
    )


def test_expected_decoding_is_the_filtered_mean_embedding(batch) -> None:
    """By hand: probabilities 0.6/0.3/0.1; top-p 0.85 drops the 0.1 code and renormalises."""
    vae, _, _, _ = batch
    logits = torch.full((1, 1, vae.vocab_size), -1e4)
    logits[0, 0, 2], logits[0, 0, 5], logits[0, 0, 9] = math.log(0.6), math.log(0.3), math.log(0.1)
    codes = vae.quantize.embedding.weight.detach()
    with torch.no_grad():
        idx, h = choose_tokens(vae, logits, SamplingConfig(expected=True, top_p=1.0), None)
        _, h_p = choose_tokens(vae, logits, SamplingConfig(expected=True, top_p=0.85), None)
    assert int(idx) == 2  # the reported token is the argmax
    torch.testing.assert_close(h[0, 0], 0.6 * codes[2] + 0.3 * codes[5] + 0.1 * codes[9])
    torch.testing.assert_close(h_p[0, 0], (0.6 * codes[2] + 0.3 * codes[5]) / 0.9)


def test_expected_generation_is_deterministic_and_its_own(batch) -> None:
    vae, var, prefix, _ = batch
    a = generate(vae, var, prefix, sampling=EXPECTED, return_scales=True)
    b = generate(vae, var, prefix, sampling=sampling_for("expected", seed=3), use_cache=False)
    torch.testing.assert_close(a.pred_B1HW, b.pred_B1HW, rtol=0, atol=1e-5)  # seed-free
    g = generate(vae, var, prefix, sampling=GREEDY).pred_B1HW
    assert not torch.allclose(a.pred_B1HW, g, atol=1e-3)


def test_decoding_names() -> None:
    assert sampling_for("greedy") == GREEDY and sampling_for("expected", 0) == EXPECTED
    assert sampling_for("sample", seed=4) == SamplingConfig(seed=4)
    assert [sampling_for(n).decoding for n in ("greedy", "sample", "expected")] == [
        "greedy",
        "sample",
        "expected",
    ]
    with pytest.raises(ValueError, match="unknown decoding 'mean'"):
        sampling_for("mean")


def test_invalid_sampling_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        SamplingConfig(top_p=0.0)
    with pytest.raises(ValueError):
        SamplingConfig(num_samples=0)
    with pytest.raises(ValueError, match="exclude each other"):
        SamplingConfig(greedy=True, expected=True)
