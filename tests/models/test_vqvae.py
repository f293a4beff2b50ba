"""The multi-scale residual quantiser: its decompositions agree with each other."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from depthcore.models import create_model, image_prefix, phi_index_map
from depthcore.models.configs import OFFICIAL_PHI_INDEX_10


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    vae, _ = create_model("tiny")
    with torch.no_grad():  # a codebook on the scale of the features, so many codes are used
        vae.quantize.embedding.weight.normal_(0, 0.3)
    rgb = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return vae.eval(), rgb


def test_phi_index_map_official_and_linspace_rule() -> None:
    assert phi_index_map(10, 4) == OFFICIAL_PHI_INDEX_10 == (0, 0, 1, 1, 1, 2, 2, 3, 3, 3)
    # 6 scales, ticks 1/12, 4/12, 7/12, 11/12 ... nearest to si/5 = 0, .2, .4, .6, .8, 1
    assert phi_index_map(6, 4) == (0, 0, 1, 2, 3, 3)
    assert phi_index_map(3, 1) == (0, 0, 0)


def test_shapes_and_token_ranges(tiny) -> None:
    vae, rgb = tiny
    idx = vae.img_to_idxBl(rgb)
    assert [tuple(t.shape) for t in idx] == [(2, pn * pn) for pn in vae.v_patch_nums]
    assert all(int(t.min()) >= 0 and int(t.max()) < vae.vocab_size for t in idx)
    assert len(torch.cat(idx, 1).unique()) > 10
    L = sum(pn * pn for pn in vae.v_patch_nums)
    assert tuple(vae.idxBl_to_var_input(idx).shape) == (2, L - 1, vae.Cvae)
    assert tuple(image_prefix(vae, rgb).shape) == (2, L, vae.Cvae)


def test_idxBl_to_var_input_matches_stepwise_autoregressive_input(tiny) -> None:
    vae, rgb = tiny
    idx = vae.img_to_idxBl(rgb)
    SN, H = len(vae.v_patch_nums), vae.v_patch_nums[-1]
    f_hat = torch.zeros(2, vae.Cvae, H, H)
    steps = []
    for si, pn in enumerate(vae.v_patch_nums[:-1]):
        h = vae.quantize.embedding(idx[si]).transpose(1, 2).reshape(2, vae.Cvae, pn, pn)
        f_hat, nxt = vae.get_next_autoregressive_input(si, SN, f_hat, h)
        steps.append(nxt.flatten(2).transpose(1, 2))
    torch.testing.assert_close(vae.idxBl_to_var_input(idx), torch.cat(steps, 1))


def test_fhat_rebuilt_from_tokens_equals_quantiser_fhat(tiny) -> None:
    vae, rgb = tiny
    f = vae.encode_features(rgb).detach()
    fhats = vae.quantize.f_to_fhats(f)
    idx = vae.f_to_idxBl(f)
    torch.testing.assert_close(vae.quantize.idxBl_to_fhat(idx), fhats[-1], rtol=0, atol=1e-5)
    # and the straight-through training pass yields the same reconstruction
    f_hat_st, vq_loss = vae.quantize(f)
    torch.testing.assert_close(f_hat_st, fhats[-1], rtol=0, atol=1e-5)
    assert torch.isfinite(vq_loss)
    # residual quantisation: every added scale brings f_hat closer to f (on average)
    errs = [float((fh - f).square().mean()) for fh in fhats]
    assert errs[-1] < errs[0]


def test_prefix_is_fhat_resized_scale_by_scale(tiny) -> None:
    vae, rgb = tiny
    fhats = vae.quantize.f_to_fhats(vae.encode_features(rgb))
    prefix = image_prefix(vae, rgb)
    start = 0
    for fh, pn in zip(fhats, vae.v_patch_nums, strict=True):
        want = fh if pn == fh.shape[-1] else F.interpolate(fh, size=(pn, pn), mode="bicubic")
        torch.testing.assert_close(prefix[:, start : start + pn * pn], want.flatten(2).mT)
        start += pn * pn


def test_tokenizer_training_pass_has_gradients(tiny) -> None:
    vae, rgb = tiny
    vae.train()
    recon, vq_loss = vae(rgb)
    loss = F.mse_loss(recon, rgb) + vq_loss
    loss.backward()
    for name in ("encoder.conv_in.weight", "decoder.conv_out.weight", "quantize.embedding.weight"):
        grad = dict(vae.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    vae.zero_grad()
    vae.eval()


def test_wrong_input_size_is_refused(tiny) -> None:
    vae, _ = tiny
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        vae.encode_features(torch.zeros(1, 3, 32, 32))
