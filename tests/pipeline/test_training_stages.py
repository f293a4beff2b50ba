"""Tokenizer and features stages from a params file; official import; clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
import torch
import yaml

from depthcore.io import file_sha256
from depthcore.models import create_model
from depthcore.models.checkpoint import load_vae
from stages import features as features_stage
from stages import tokenizer as tokenizer_stage
from stages import tokenizer_eval as tokenizer_eval_stage


def _params(tmp_path: Path, processed_dir: Path, **tokenizer: object) -> Path:
    params = {
        "tokenizer": {
            "data_dir": str(processed_dir), "out_dir": str(tmp_path / "tok"), "steps": 3,
            "batch_size": 2, **tokenizer,
        },
        "tokenizer_eval": {"frames": 2},
        "features": {
            "data_dir": str(processed_dir), "tokenizer": str(tmp_path / "tok" / "vae.safetensors"),
            "out_dir": str(tmp_path / "features"), "batch_size": 8,
        },
    }  # fmt: skip
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_tokenizer_then_features_stage(processed_dir: Path, tmp_path: Path) -> None:
    params = _params(tmp_path, processed_dir)
    tokenizer_stage.main(["--params", str(params)])
    metrics = json.loads((tmp_path / "tok" / "tokenizer_train.json").read_text())
    assert metrics["source"] == "trained" and metrics["steps"] == 3
    assert metrics["train_seconds"] > 0 and metrics["config"]["steps"] == 3
    tokenizer_eval_stage.main(["--params", str(params)])
    ceiling = json.loads((tmp_path / "tok" / "tokenizer_metrics.json").read_text())
    assert ceiling["recon_frames"] == 2.0 and 0 < ceiling["recon_abs_rel"] < 10
    loaded = load_vae(tmp_path / "tok" / "vae.safetensors")
    assert loaded.meta["space"] == "sqrt_disparity"

    features_stage.main(["--params", str(params)])
    for split, n in (("train", 12), ("val", 4)):
        with h5py.File(tmp_path / "features" / f"{split}.h5") as h5:
            assert h5["fD"].shape[0] == n
            assert h5.attrs["tokenizer_sha256"] == file_sha256(tmp_path / "tok" / "vae.safetensors")


def test_tokenizer_imports_an_official_style_checkpoint(
    processed_dir: Path, tmp_path: Path
) -> None:
    torch.manual_seed(5)
    vae, _ = create_model("tiny")
    torch.save(vae.state_dict(), tmp_path / "vae_official.pth")
    params = _params(tmp_path, processed_dir, checkpoint=str(tmp_path / "vae_official.pth"))
    tokenizer_stage.main(["--params", str(params)])
    metrics = json.loads((tmp_path / "tok" / "tokenizer_train.json").read_text())
    assert metrics["source"] == "official:vae_official.pth" and "steps" not in metrics
    imported = load_vae(tmp_path / "tok" / "vae.safetensors").vae.state_dict()
    for name, w in vae.state_dict().items():
        assert torch.equal(imported[name], w), name


def test_bad_checkpoint_and_params_fail_naming_the_problem(
    processed_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vae, _ = create_model("tiny")
    sd = vae.state_dict()
    sd.pop("quant_conv.weight")
    torch.save(sd, tmp_path / "broken.pth")
    params = _params(tmp_path, processed_dir, checkpoint=str(tmp_path / "broken.pth"))
    with pytest.raises(SystemExit) as exc:
        tokenizer_stage.main(["--params", str(params)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "broken.pth" in err and "quant_conv.weight" in err

    params = _params(tmp_path, processed_dir, stpes=3)
    with pytest.raises(SystemExit):
        tokenizer_stage.main(["--params", str(params)])
    assert "tokenizer.stpes" in capsys.readouterr().err
