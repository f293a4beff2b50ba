"""The released DepthART model.safetensors loads: a file the OFFICIAL code wrote
(bench/official/make_depthart_fixture.py, bulatko/DepthART b2bc093) at a small width, its
teacher-forced logits reproduced; the full d16 file's key set is exactly ours."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from depthcore.cli import main
from depthcore.errors import CheckpointError
from depthcore.models import MODEL_CONFIGS, create_model, image_prefix
from depthcore.models.checkpoint import load_model
from depthcore.models.generate import (
    GREEDY,
    decode_depth,
    encode_image,
    prepare_for_inference,
    rollout,
)
from depthcore.models.official import DERIVED_KEYS, VAE_PREFIX
from tests.helpers.checkpoints import random_rgb
from tests.helpers.models import described, read_keys_tsv

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official_depthart"
SMALL_FILE = FIXTURES / "depthart_small.safetensors"

#: The small model the generator built (its SMALL), as our config.
SMALL = dataclasses.replace(
    MODEL_CONFIGS["d16-depthart"],
    vae=dataclasses.replace(
        MODEL_CONFIGS["d16-depthart"].vae,
        vocab_size=64,
        z_channels=8,
        ch=32,
        ch_mult=(1, 1),
        num_res_blocks=1,
        v_patch_nums=(1, 2, 3, 4),
    ),  # fmt: skip
    var=dataclasses.replace(MODEL_CONFIGS["d16-depthart"].var, depth=2, embed_dim=64, num_heads=4),
    image_size=8,
)


def test_the_official_file_reproduces_the_official_teacher_forced_logits() -> None:
    """Tolerance: 1e-4 absolute on logits of magnitude ~10 (fp32; the official and our
    passes order their sums differently)."""
    loaded = load_model(SMALL_FILE, expected=SMALL)
    assert loaded.meta["space"] == "scale_depth" and loaded.config == SMALL
    vae, var = loaded.vae.eval(), loaded.var.eval()
    io = load_file(str(FIXTURES / "depthart_small_io.safetensors"))
    depth3 = io["depth"].clip(-1, 1).repeat(1, 3, 1, 1)  # the official normaliser was identity
    with torch.no_grad():
        prefix = image_prefix(vae, io["image"])
        x_BlCv = vae.idxBl_to_var_input(vae.f_to_idxBl(vae.encode_features(depth3)))
        logits = var(prefix, x_BlCv)
    assert io["tf_logits"].abs().max() > 1.0  # a fixture that can tell models apart
    torch.testing.assert_close(logits, io["tf_logits"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("prepared", [False, True], ids=["as-loaded", "prepared-fp32"])
def test_greedy_generation_reproduces_the_official_inference(prepared: bool) -> None:
    """The official ``autoregressive_infer_cfg`` made greedy (top-k 1) on the official file:
    our KV-cached rollout chooses the same token at every position of every scale, and the
    decoded depth agrees within 1e-5 (fp32; the two decoders sum in another order). The
    same holds after ``prepare_for_inference`` (the fast path bench/bench_generate.py times
    against the official sampler)."""
    loaded = load_model(SMALL_FILE, expected=SMALL)
    vae, var = loaded.vae.eval(), loaded.var.eval()
    if prepared:
        prepare_for_inference(vae, var)
    io = load_file(str(FIXTURES / "depthart_small_io.safetensors"))
    with torch.no_grad():
        out = rollout(vae, var, encode_image(vae, io["image"]), GREEDY)
        depth = decode_depth(vae, out.f_hat_BChw)
    official = [io[f"greedy_idx_{si}"] for si in range(len(SMALL.vae.v_patch_nums))]
    assert len({tuple(t.flatten().tolist()) for t in official[1:]}) > 1  # not one token
    for si, (ours, theirs) in enumerate(zip(out.idx_Bl, official, strict=True)):
        assert torch.equal(ours, theirs), f"scale {si}"
    assert io["greedy_depth"].std() > 0.05  # a depth map, not a constant
    torch.testing.assert_close(depth, io["greedy_depth"], rtol=0, atol=1e-5)


def test_the_d16_file_keys_are_exactly_ours() -> None:
    official = read_keys_tsv(FIXTURES / "depthart_d16.keys.tsv")
    with torch.device("meta"):
        vae, var = create_model("d16-depthart")
    ours = {f"{VAE_PREFIX}{k}": v for k, v in described(vae.state_dict()).items()}
    ours.update({k: v for k, v in described(var.state_dict()).items() if k not in DERIVED_KEYS})
    assert ours == official


def test_a_file_of_another_model_is_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"another model: depth 2 \(expected 16\)") as err:
        load_model(SMALL_FILE)  # the default expectation: the full-size d16-depthart
    assert "\n" not in str(err.value) and str(SMALL_FILE) in str(err.value)
    sd = load_file(str(SMALL_FILE))
    sd["blocks.0.attn.scale_mul_1H11"] = torch.zeros(1, 4, 1, 1)  # a cos_attn model
    odd = tmp_path / "cos_attn.safetensors"
    save_file(sd, str(odd))
    with pytest.raises(CheckpointError, match="attn_l2_norm True"):
        load_model(odd, expected=SMALL)
    del sd["blocks.0.attn.scale_mul_1H11"], sd["head.bias"]
    save_file(sd, str(odd))
    with pytest.raises(CheckpointError, match="missing: head.bias"):
        load_model(odd, expected=SMALL)
    save_file({"x": torch.zeros(1)}, str(odd))  # neither ours nor the official layout
    with pytest.raises(CheckpointError, match="'depthcore_config' is missing"):
        load_model(odd)


def test_depthart_predict_takes_the_official_file(tmp_path: Path, capsys, monkeypatch) -> None:
    """The CLI path (checkpoint kind, load_model, the predictor's space) end to end; the
    small file stands in for d16-depthart, which the CLI expects of an official file."""
    Image.fromarray(random_rgb(12, 16)).save(tmp_path / "a.png")
    argv = ["predict", "-q", "--device", "cpu", str(tmp_path / "a.png"), "--model", str(SMALL_FILE)]
    assert main([*argv, "-o", str(tmp_path / "wrong")]) == 1  # the full size is expected
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another model" in err and SMALL_FILE.name in err
    monkeypatch.setitem(MODEL_CONFIGS, "d16-depthart", SMALL)
    assert main([*argv, "-o", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert any((tmp_path / "out").iterdir())
