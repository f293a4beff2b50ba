"""DepthART's official ``rec_loss`` last scale (train.rec_loss): no cross-entropy there,
a Gumbel-softmax code mixture completing f_hat and 10 x its MSE to the depth features."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from depthcore.models.generate import GREEDY, rollout
from depthcore.training.depthart import depthart_loss, with_rec_loss
from depthcore.training.losses import scale_cross_entropy, training_loss
from tests.helpers.models import tiny_batch


@pytest.fixture(scope="module")
def batch():
    vae, var, prefix, fD = tiny_batch(B=2, seed=11)
    return vae, var.eval(), prefix, fD


def test_off_by_default_and_on_it_drops_only_the_last_scale(batch) -> None:
    vae, var, prefix, fD = batch
    torch.manual_seed(0)
    plain = depthart_loss(vae, var, prefix, fD)
    assert plain.scored_L is None and plain.extra_loss is None
    torch.manual_seed(0)
    rec = depthart_loss(vae, var, prefix, fD, rec_loss=True)
    start, end = var.begin_ends[-1]
    assert (
        rec.scored_L is not None and not rec.scored_L[start:].any() and rec.scored_L[:start].all()
    )
    assert torch.equal(rec.ce_BL, plain.ce_BL)  # the CE itself is unchanged (and still logged)
    assert rec.extra_loss is not None and rec.extra_loss > 0
    torch.testing.assert_close(rec.loss, plain.ce_BL[:, :start].mean() + rec.extra_loss)
    # its gradient reaches the last scale's logits only
    (g_BLV,) = torch.autograd.grad(rec.extra_loss, rec.logits_BLV, retain_graph=True)
    assert g_BLV[:, start:].abs().sum() > 0 and g_BLV[:, :start].abs().sum() == 0
    rec.loss.backward()  # and the whole loss trains the transformer
    assert var.head.weight.grad is not None and var.head.weight.grad.abs().sum() > 0
    var.zero_grad(set_to_none=True)


def test_a_peaked_last_scale_reproduces_the_rollouts_f_hat(batch) -> None:
    """Logits all but one-hot at the rollout's own last tokens: the Gumbel mixture is that
    code, so f_hat is the rollout's (built by the quantiser's own autoregressive update)."""
    vae, var, prefix, fD = batch
    own = rollout(vae, var, prefix, GREEDY)
    targets = torch.cat(own.idx_Bl, 1)
    logits = F.one_hot(targets, vae.vocab_size).float() * 1e4
    out = with_rec_loss(
        vae, scale_cross_entropy(logits, targets, var.begin_ends), own.h_K, fD, var.begin_ends
    )
    expected = (own.f_hat_BChw - fD).pow(2).mean() * 10
    torch.testing.assert_close(out.extra_loss, expected, rtol=1e-5, atol=1e-6)


def test_training_loss_weights_the_scored_tokens(batch) -> None:
    vae, var, _, _ = batch
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, var.L, vae.vocab_size, generator=gen)
    target = torch.randint(vae.vocab_size, (2, var.L), generator=gen)
    base = scale_cross_entropy(logits, target, var.begin_ends)
    start = var.begin_ends[-1][0]
    scored = torch.arange(var.L) < start
    extra = torch.tensor(0.5)
    out = dataclasses.replace(
        base, loss=base.ce_BL[:, :start].mean() + extra, scored_L=scored, extra_loss=extra
    )
    per_token = training_loss(out, var.begin_ends, "token")
    torch.testing.assert_close(per_token, base.ce_BL[:, :start].mean() + 0.5)
    per_scale = training_loss(out, var.begin_ends, "scale")
    scales = [base.ce_BL[:, s:e].mean() for s, e in var.begin_ends[:-1]]
    torch.testing.assert_close(per_scale, torch.stack(scales).mean() + 0.5)
