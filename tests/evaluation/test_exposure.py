"""The exposure gap on a tiny seeded model: each input mode agrees with the code path it
measures (VAR's teacher forcing, DepthART's rollout, generation), and a rollout equal to
teacher forcing has no gap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from depthcore.data.features import FeatureDataset
from depthcore.evaluation import exposure
from depthcore.evaluation.exposure import exposure_batch, measure_inputs, teacher_forced_inputs
from depthcore.evaluation.scales import exposure_gaps, write_exposure
from depthcore.models import build_model, resolve_config
from depthcore.models.checkpoint import load_vae
from depthcore.models.generate import Rollout, generate, sampling_for
from depthcore.tracking.runs import read_scales
from depthcore.training.depthart import depthart_loss
from depthcore.training.teacher_forcing import teacher_forcing_loss
from tests.helpers.models import TEST_PIXEL_ENCODER, tiny_pixel_batch


@pytest.fixture(scope="module")
def batch():
    vae, var, prefix, fD, rgb = tiny_pixel_batch(B=2, seed=3)
    return vae, var.eval(), prefix, fD, rgb


def test_teacher_forced_inputs_give_var_tf_loss(batch) -> None:
    vae, var, prefix, fD, rgb = batch
    h_K = teacher_forced_inputs(vae, fD)
    loss_K, pred_KBHW = measure_inputs(vae, var, prefix, fD, h_K, sampling_for("greedy"), None, rgb)
    with torch.no_grad():
        want = teacher_forcing_loss(vae, var, prefix, fD, rgb).per_scale_loss
    torch.testing.assert_close(loss_K, want, rtol=1e-5, atol=1e-5)
    assert pred_KBHW.shape == (len(vae.v_patch_nums), 2, 64, 64)


@pytest.mark.parametrize("decoding", ["greedy", "expected"])
def test_own_inputs_give_depthart_loss_and_the_generated_scales(batch, decoding: str) -> None:
    vae, var, prefix, fD, rgb = batch
    sampling = sampling_for(decoding)
    measured = exposure_batch(vae, var, prefix, fD, sampling, None, rgb)
    loss_K, pred_KBHW = measured["own"]
    with torch.no_grad():
        want = depthart_loss(vae, var, prefix, fD, rgb, rollout_decoding=decoding)
    torch.testing.assert_close(loss_K, want.per_scale_loss, rtol=1e-5, atol=1e-5)
    gen = generate(vae, var, prefix, sampling=sampling, return_scales=True, rgb_B3HW=rgb)
    torch.testing.assert_close(pred_KBHW, gen.scales_K_B1HW[:, :, 0], rtol=0, atol=1e-4)
    # scale 1 sees only the image prefix in both modes: no gap there; later scales differ
    tf_loss_K, tf_pred_KBHW = measured["teacher_forced"]
    torch.testing.assert_close(loss_K[0], tf_loss_K[0])
    torch.testing.assert_close(pred_KBHW[0], tf_pred_KBHW[0])
    assert not torch.allclose(loss_K[1:], tf_loss_K[1:])


def _val_model(setup: Path):
    model_cfg = resolve_config("tiny", var={"depth": 2, "embed_dim": 64, "num_heads": 2,
                                            "pixel_encoder": TEST_PIXEL_ENCODER})  # fmt: skip
    torch.manual_seed(0)
    _, var = build_model(model_cfg)
    vae = load_vae(setup / "vae.safetensors", expected=model_cfg.vae).vae.eval()
    fields = ("prefix", "rgb", "depth", "mask", "fD")
    return vae, var.eval(), FeatureDataset(setup / "features" / "val.h5", fields=fields)


def test_a_rollout_equal_to_teacher_forcing_has_zero_gap(
    feature_setup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vae, var, val_set = _val_model(feature_setup)
    kw = dict(space="sqrt_disparity", max_frames=3, batch_size=2, decodings=("greedy", "sample"))
    gaps = exposure_gaps(vae, var, val_set, **kw)
    K = len(vae.v_patch_nums)
    for decoding, gap in gaps.items():
        assert gap.decoding == decoding and len(gap.loss_gap) == len(gap.abs_rel_gap) == K
        assert any(abs(v) > 1e-6 for v in gap.loss_gap), decoding  # an untrained model has one
    assert gaps["greedy"].loss_gap[0] == pytest.approx(0.0, abs=1e-6)

    def teacher_forced_rollout(vae, var, prefix, sampling, *, generator=None, rgb_B3HW=None):
        del prefix, sampling, generator, rgb_B3HW
        return Rollout([], torch.zeros(()), None, teacher_forced_inputs(vae, fD_now[0]), [])

    fD_now: list[torch.Tensor] = []
    measure = exposure.exposure_batch

    def remember(vae, var, prefix, fD, *args):
        fD_now[:] = [fD]
        return measure(vae, var, prefix, fD, *args)

    monkeypatch.setattr(exposure, "rollout", teacher_forced_rollout)
    monkeypatch.setattr("depthcore.evaluation.scales.exposure_batch", remember)
    zero = exposure_gaps(vae, var, val_set, **{**kw, "decodings": ("greedy",)})["greedy"]
    assert zero.loss_gap == [0.0] * K and zero.abs_rel_gap == [0.0] * K
    assert zero.loss["teacher_forced"] == gaps["greedy"].loss["teacher_forced"]

    write_exposure(tmp_path / "exposure", gaps)
    rows = (tmp_path / "exposure" / "sample.csv").read_text().splitlines()
    assert rows[0] == exposure.CSV_HEADER and len(rows) == 1 + K
    summary = {"patch_nums": gaps["greedy"].patch_nums, "val_abs_rel_per_scale": [0.5] * K,
               "val_abs_rel": 0.5, "refinement_gain": 0.0,
               "exposure_gap": {d: g.to_json() for d, g in gaps.items()}}  # fmt: skip
    (tmp_path / "scales.json").write_text(json.dumps(summary))
    logged = read_scales(tmp_path / "scales.json")
    assert logged["exposure_sample_abs_rel_gap_scale_8x8"] == pytest.approx(
        gaps["sample"].abs_rel_gap[-1]
    )
