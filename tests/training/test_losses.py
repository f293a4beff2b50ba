"""The training loss: per-token / per-scale weighting and the expected-embedding term."""

from __future__ import annotations

import math

import pytest
import torch

from depthcore.training.losses import expected_embedding_error, scale_cross_entropy, training_loss


def _codes() -> torch.Tensor:
    return torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # mean squared norm 1


def test_expected_embedding_error_by_hand() -> None:
    # token 0: 0.5/0.5 on codes 0 and 1 -> mean (0.5, 0.5); target code 0 -> error 0.5
    # token 1: all mass on code 2, target 2 -> 0
    logits = torch.tensor([[[0.0, 0.0, -1e4], [-1e4, -1e4, 0.0]]])
    err = expected_embedding_error(logits, torch.tensor([[0, 2]]), _codes())
    torch.testing.assert_close(err, torch.tensor([[0.5, 0.0]]))
    # scale-free: a codebook twice as large gives the same normalised error
    err2 = expected_embedding_error(logits, torch.tensor([[0, 2]]), 2 * _codes())
    torch.testing.assert_close(err2, err)


def test_near_miss_costs_less_than_far_miss_while_ce_is_equal() -> None:
    codes = torch.tensor([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0]])
    near = torch.tensor([[[-1e4, 0.0, -1e4]]])  # all mass on code 1, close to the target 0
    far = torch.tensor([[[-1e4, -1e4, 0.0]]])  # all mass on code 2, opposite
    target = torch.tensor([[0]])
    assert float(expected_embedding_error(near, target, codes)) < 0.05
    assert float(expected_embedding_error(far, target, codes)) > 1.0
    ce = [float(scale_cross_entropy(x, target, [(0, 1)]).loss) for x in (near, far)]
    assert ce[0] == pytest.approx(ce[1])


def test_training_loss_weightings() -> None:
    begin_ends = [(0, 1), (1, 3)]
    logits = torch.zeros(1, 3, 3, requires_grad=True)  # uniform: CE log 3 everywhere
    out = scale_cross_entropy(logits, torch.tensor([[0, 1, 2]]), begin_ends)
    assert float(training_loss(out, begin_ends, "token")) == pytest.approx(math.log(3))
    assert float(training_loss(out, begin_ends, "scale")) == pytest.approx(math.log(3))
    # the embedding term under the same per-scale weighting, added with its weight
    err_BL = expected_embedding_error(out.logits_BLV, out.target_BL, _codes())
    want = math.log(3) + 0.5 * (0.5 * float(err_BL[0, 0]) + 0.5 * float(err_BL[0, 1:].mean()))
    got = training_loss(out, begin_ends, "scale", _codes(), 0.5)
    assert float(got) == pytest.approx(want)
    got.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="needs the codebook"):
        training_loss(out, begin_ends, "token", None, 0.5)
    with pytest.raises(ValueError, match="weighting must be"):
        training_loss(out, begin_ends, "pixel")
