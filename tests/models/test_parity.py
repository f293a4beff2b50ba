"""Numerical parity with the official VAR code, through golden fixtures.

``bench/parity/make_parity_fixtures.py`` ran FoundationVision/VAR's own VQVAE and VAR
(commit in tests/fixtures/parity/README.md) with weights from ``tests/helpers/parity.py``;
here the same weights go into our modules, the same input goes through, and every
output must match: tokens exactly, floats to 1e-4 (fp32).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from depthcore.models import VQVAE, DepthVAR, VARConfig
from tests.helpers.parity import PARITY_CONFIGS, fill_parameters, parity_image, summarise

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
ATOL = 1e-4


def _ours(name: str, seed: int) -> tuple[VQVAE, DepthVAR, int]:
    cfg = PARITY_CONFIGS[name]
    v, t = cfg["vae"], cfg["var"]
    vae = VQVAE(v["vocab_size"], v["z_channels"], v["ch"], 4, v["v_patch_nums"])
    var = DepthVAR(v["vocab_size"], v["z_channels"], v["v_patch_nums"], VARConfig(**t))
    filled = fill_parameters(vae, seed) + fill_parameters(var, seed)
    return vae.eval(), var.eval(), len(filled)


def _max_abs_diff(fixture: np.lib.npyio.NpzFile, name: str, ours: torch.Tensor) -> float:
    """Largest |ours - official| over what the fixture kept of tensor ``name``."""
    if name in fixture.files:
        assert fixture[name].shape == tuple(ours.shape), name
        return float(np.abs(fixture[name] - ours.float().numpy()).max())
    mine = summarise(name, ours)
    assert tuple(fixture[f"{name}.shape"]) == tuple(ours.shape), name
    np.testing.assert_allclose(
        mine[f"{name}.stats"], fixture[f"{name}.stats"], rtol=1e-5, atol=1e-2
    )
    return max(
        float(np.abs(mine[f"{name}.{part}"] - fixture[f"{name}.{part}"]).max())
        for part in ("head", "strided")
    )


def _check_config(name: str) -> dict[str, float]:
    fixture = np.load(FIXTURES / f"{name}.npz")
    meta = json.loads(str(fixture["meta"]))
    cfg = PARITY_CONFIGS[name]
    vae, var, n_filled = _ours(name, meta["seed"])
    assert n_filled == meta["parameters"]
    assert sum(p.numel() for m in (vae, var) for p in m.parameters()) == meta["num_params"]

    rgb_B3HW = parity_image(cfg["batch"], cfg["image_size"], meta["seed"])
    np.testing.assert_allclose(summarise("image", rgb_B3HW)["image.stats"], fixture["image.stats"])
    with torch.no_grad():
        idx_Bl_list = vae.img_to_idxBl(rgb_B3HW)
        np.testing.assert_array_equal(torch.cat(idx_Bl_list, dim=1).numpy(), fixture["idx_BL"])
        var_input_BlCv = vae.idxBl_to_var_input(idx_Bl_list)
        logits_BLV = var(None, var_input_BlCv)
        rec_B3HW = vae.idxBl_to_img(idx_Bl_list)
    diffs = {
        "var_input": _max_abs_diff(fixture, "var_input", var_input_BlCv),
        "logits": _max_abs_diff(fixture, "logits", logits_BLV),
        "rec": _max_abs_diff(fixture, "rec", rec_B3HW),
    }
    if "logits.first" in fixture.files:
        first = fixture["logits.first"].shape[1]
        diffs["logits.first"] = float(
            np.abs(fixture["logits.first"] - logits_BLV[:, :first].numpy()).max()
        )
        diffs["logits.max_BL"] = float(
            np.abs(fixture["logits.max_BL"] - logits_BLV.amax(-1).numpy()).max()
        )
    print(f"parity {name}: max abs diff " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    assert max(diffs.values()) <= ATOL, diffs
    return diffs


def test_small_config_matches_official_var() -> None:
    _check_config("small")


def test_d16_matches_official_var() -> None:
    _check_config("d16")


def test_parity_check_can_fail() -> None:
    """One perturbed weight moves the logits past the tolerance (the check is live)."""
    fixture = np.load(FIXTURES / "small.npz")
    meta = json.loads(str(fixture["meta"]))
    vae, var, _ = _ours("small", meta["seed"])
    cfg = PARITY_CONFIGS["small"]
    with torch.no_grad():
        var.blocks[0].attn.scale_mul_1H11.add_(0.01)
        idx_Bl_list = vae.img_to_idxBl(parity_image(cfg["batch"], cfg["image_size"], meta["seed"]))
        logits_BLV = var(None, vae.idxBl_to_var_input(idx_Bl_list))
    assert _max_abs_diff(fixture, "logits", logits_BLV) > ATOL


def test_fixture_readme_names_the_commit_that_made_them() -> None:
    readme = (FIXTURES / "README.md").read_text()
    for name in PARITY_CONFIGS:
        meta = json.loads(str(np.load(FIXTURES / f"{name}.npz")["meta"]))
        assert meta["var_commit"] in readme, name
