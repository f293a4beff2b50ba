"""DepthART and teacher forcing: targets, consistency of the efficient form, overfitting."""

from __future__ import annotations

import pytest
import torch

from depthcore.models import VQVAE, create_model, image_prefix
from depthcore.models.generate import EXPECTED, GREEDY, rollout
from depthcore.training.losses import scale_cross_entropy
from depthcore.training.objectives import OBJECTIVES, depthart_targets
from tests.helpers.models import tiny_batch


@pytest.fixture(scope="module")
def batch():
    vae, var, prefix, fD = tiny_batch(B=2, seed=3)
    with torch.no_grad():  # codebook on the features' scale: non-trivial token pyramids
        vae.quantize.embedding.weight.normal_(0, float(fD.std()))
    return vae, var.eval(), prefix, fD


def test_depthart_targets_equal_teacher_forcing_for_own_tokens(batch) -> None:
    vae, _, _, fD = batch
    own = vae.f_to_idxBl(fD)
    assert len(torch.cat(own, 1).unique()) > 5
    for got, want in zip(depthart_targets(vae, fD, own), own, strict=True):
        assert torch.equal(got, want)


def _hand_vae() -> VQVAE:
    """2-dim codes e0=(0,0) e1=(1,0) e2=(0,1) e3=(2,2); phi(h) = 0.5 h; scales 1x1 and 2x2."""
    vae = VQVAE(4, 2, 8, 1, (1, 2), ch_mult=(1, 2), num_res_blocks=1, norm_groups=8)
    with torch.no_grad():
        vae.quantize.embedding.weight.copy_(torch.tensor([[0, 0], [1, 0], [0, 1], [2, 2.0]]))
        phi = vae.quantize.quant_resi.qresi_ls[0]
        phi.weight.zero_()
        phi.bias.zero_()
    return vae


def test_depthart_targets_hand_checked_perturbation() -> None:
    vae = _hand_vae()
    fD = torch.zeros(1, 2, 2, 2)
    fD[:, 0] = 1.2  # every cell (1.2, 0)
    fD[0, :, 1, 1] = torch.tensor([1.2, 2.0])  # one cell (1.2, 2.0): mean (1.2, 0.5)
    own = vae.f_to_idxBl(fD)
    # scale 1: mean (1.2, 0.5) -> e1 (d=.29; e0 1.69, e2 1.69, e3 .64+2.25).
    # residual after phi(e1)=(.5,0): (.7,0) x3 -> e1 (.09); (.7, 2.0) -> e2 (.49+1=1.49;
    # e3 1.69+0, wait e3: (1.3^2 + 0^2)=1.69) -> e2.
    assert own[0].tolist() == [[1]] and own[1].tolist() == [[1, 1, 1, 2]]
    assert [t.tolist() for t in depthart_targets(vae, fD, own)] == [[[1]], [[1, 1, 1, 2]]]
    # the model predicted e3 at scale 1 instead: f_hat_pred = phi(e3) = (1, 1), so the
    # residuals are (.2, -1) x3 -> e0 (1.04; e1 1.64) and (.2, 1) -> e2 (.04; e3 3.24+1)
    perturbed = [torch.tensor([[3]]), own[1]]
    targets = depthart_targets(vae, fD, perturbed)
    assert targets[0].tolist() == [[1]]  # the first target never depends on predictions
    assert targets[1].tolist() == [[0, 0, 0, 2]]


def test_depthart_parallel_pass_reproduces_its_rollout(batch) -> None:
    """The efficient form is exact: the parallel pass's argmax equals the rollout's tokens."""
    vae, var, prefix, fD = batch
    out = OBJECTIVES["depthart"](vae, var, prefix, fD)
    tokens = torch.cat(rollout(vae, var, prefix, GREEDY).idx_Bl, dim=1)
    assert torch.equal(out.logits_BLV.argmax(-1), tokens)
    own = torch.cat(vae.f_to_idxBl(fD), 1)
    want = torch.cat(
        depthart_targets(vae, fD, list(tokens.split([pn * pn for pn in vae.v_patch_nums], dim=1))),
        1,
    )
    assert torch.equal(out.target_BL, want)
    assert not torch.equal(out.target_BL, own)  # an untrained model's rollout is not the GT


def test_teacher_forcing_targets_are_the_tokenizer_tokens(batch) -> None:
    vae, var, prefix, fD = batch
    out = OBJECTIVES["var_tf"](vae, var, prefix, fD)
    assert torch.equal(out.target_BL, torch.cat(vae.f_to_idxBl(fD), 1))
    assert out.per_scale_loss.shape == (len(vae.v_patch_nums),)
    assert float(out.loss.detach()) == pytest.approx(
        sum(float(s) * pn * pn for s, pn in zip(out.per_scale_loss, vae.v_patch_nums, strict=True))
        / var.L,
        rel=1e-5,
    )


def test_tiny_overfits_four_pairs_with_depthart() -> None:
    """The tiny layout (narrowed to 2 blocks of width 128 to stay fast) memorises 4 pairs.

    DepthART converges more slowly than teacher forcing: later scales' targets move
    until the earlier scales' predictions settle (about 150 steps here, vs ~50 for TF).
    """
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    small = {"depth": 2, "embed_dim": 128, "num_heads": 2, "pixel_encoder": ""}
    vae, var = create_model("tiny", var=small)
    vae.eval().requires_grad_(False)
    rgb = torch.rand(4, 3, 64, 64, generator=gen) * 2 - 1
    depth3 = rgb.mean(1, keepdim=True).expand(-1, 3, -1, -1)  # depth that follows the image
    with torch.no_grad():
        fD = vae.encode_features(depth3)
        vae.quantize.embedding.weight.normal_(0, float(fD.std()), generator=gen)
    prefix = image_prefix(vae, rgb)
    opt = torch.optim.AdamW(var.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(170):
        out = OBJECTIVES["depthart"](vae, var, prefix, fD)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    final = sum(losses[-5:]) / 5
    assert final < 0.2 * losses[0], losses[::10]
    assert float((out.logits_BLV.argmax(-1) == out.target_BL).float().mean()) > 0.9


def _two_pass_depthart_loss(vae, var, prefix, fD):
    """DepthART as first written: a rollout with its own prefix pass, then var(prefix, x)."""
    with torch.no_grad():
        pred_idx_Bl = rollout(vae, var, prefix, GREEDY, use_cache=True).idx_Bl
        targets = depthart_targets(vae, fD, pred_idx_Bl)
        x_BlCv = vae.idxBl_to_var_input(pred_idx_Bl)
    logits_BLV = var(prefix, x_BlCv)
    return scale_cross_entropy(logits_BLV, torch.cat(targets, dim=1), var.begin_ends)


def test_depthart_shared_prefix_pass_keeps_loss_and_gradients(batch) -> None:
    vae, var, prefix, fD = batch
    var.train()
    grads = []
    losses = []
    for objective in (OBJECTIVES["depthart"], _two_pass_depthart_loss):
        var.zero_grad(set_to_none=True)
        out = objective(vae, var, prefix, fD)
        out.loss.backward()
        losses.append(out.loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in var.parameters() if p.grad is not None]))
    var.zero_grad(set_to_none=True)
    var.eval()
    assert abs(float(losses[0] - losses[1])) <= 1e-6
    assert grads[0].shape == grads[1].shape
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_rollout_inputs_and_embeddings_match_the_tokens_for_greedy(batch) -> None:
    """Greedy: x_BlCv is the teacher-forcing input of its tokens, h_K their code maps."""
    vae, var, prefix, fD = batch
    own = rollout(vae, var, prefix, GREEDY, use_cache=True)
    torch.testing.assert_close(own.x_BlCv, vae.idxBl_to_var_input(own.idx_Bl), rtol=0, atol=1e-6)
    for got, want in zip(
        depthart_targets(vae, fD, own.h_K), depthart_targets(vae, fD, own.idx_Bl), strict=True
    ):
        assert torch.equal(got, want)


def test_expected_rollout_trains_on_the_mean_embeddings(batch) -> None:
    """rollout="expected": inputs and residual targets come from the mean code embeddings
    (recomputed here without the cache and by hand from the quantiser), and differ from the
    greedy ones."""
    vae, var, prefix, fD = batch
    with torch.no_grad():
        own = rollout(vae, var, prefix, EXPECTED, use_cache=False)
        quant = vae.quantize
        f_rest, targets = fD.clone(), []
        for si in range(len(vae.v_patch_nums)):
            targets.append(quant.nearest_code(quant.residual_at_scale(si, f_rest)))
            f_rest = f_rest - quant.upsample_phi(si, own.h_K[si])
        want = scale_cross_entropy(
            var(prefix, own.x_BlCv), torch.cat(targets, dim=1), var.begin_ends
        )
        got = OBJECTIVES["depthart"](vae, var, prefix, fD, rollout_decoding="expected")
        greedy = OBJECTIVES["depthart"](vae, var, prefix, fD)
    torch.testing.assert_close(got.loss, want.loss, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got.loss, greedy.loss)
    with pytest.raises(ValueError, match="rollout must be 'greedy' or 'expected'"):
        OBJECTIVES["depthart"](vae, var, prefix, fD, rollout_decoding="sample")
