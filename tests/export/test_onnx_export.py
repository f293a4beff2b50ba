"""ONNX export: the graphs run by onnxruntime give torch's tokens and depth (small seeded models).

The model: the tiny config cut to 3 scales (1, 2, 4; 32 px) with the test pixel encoder
and opened AdaLN gains (``tests.helpers.models``), so every block, the prefix, the local
path and the pixel path shape the logits. Exported once per module (the exporter traces
each of the 10 graphs, ~30 s of CPU).

Tolerances (stated in docs/export.md): greedy tokens identical at every scale;
normalised prediction within :data:`PRED_ATOL` of torch's, depth maps (the predictor's
output) within :data:`DEPTH_RTOL` relative.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from depthcore.cli import main
from depthcore.errors import CheckpointError, DepthcoreError
from depthcore.export.manifest import MANIFEST, OPSET, WEIGHTS
from depthcore.export.runner import OnnxModel
from depthcore.models import resolve_config
from depthcore.models.checkpoint import load_model, save_model
from depthcore.models.generate import encode_image, rollout, sampling_for
from depthcore.models.regression import create_regression, save_regression
from depthcore.predict.onnx_backend import OnnxPredictor
from depthcore.predict.predictor import DepthPredictor
from tests.helpers.checkpoints import random_rgb
from tests.helpers.models import TEST_PIXEL_ENCODER, tiny_pixel_batch

PRED_ATOL = 1e-4  # normalised-space units; the map spans [-1, 1]
DEPTH_RTOL = 1e-3
OVERRIDES = {
    "vae": {"v_patch_nums": (1, 2, 4)},
    "var": {"pixel_encoder": TEST_PIXEL_ENCODER},
    "image_size": 32,
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vae, var, *_ = tiny_pixel_batch(1, seed=5, **OVERRIDES)
    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    cfg = resolve_config("tiny", **OVERRIDES)
    save_model(path, vae, var, cfg, meta={"space": "sqrt_disparity", "image_size": 32})
    return path


@pytest.fixture(scope="module")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "small_onnx"
    assert main(["export", "--model", str(checkpoint), "--format", "onnx", "-o", str(out)]) == 0
    return out


def _images(n: int) -> list[np.ndarray]:
    return [random_rgb(24 + 7 * i, 40 - 3 * i, seed=i) for i in range(n)]


def test_folder_holds_graphs_weights_once_and_manifest(exported: Path, checkpoint: Path) -> None:
    manifest = json.loads((exported / MANIFEST).read_text())
    assert manifest["opset"] == OPSET and manifest["kind"] == "depthart"
    assert manifest["space"] == "sqrt_disparity" and manifest["image_size"] == 32
    assert manifest["config"]["vae"]["v_patch_nums"] == [1, 2, 4]
    assert manifest["loop"]["steps"] == ["step_1", "step_2"]
    assert sorted(manifest["decodings"]) == ["expected", "greedy"]
    for entry in manifest["graphs"].values():
        model = onnx.load(str(exported / entry["file"]), load_external_data=False)
        assert [o.version for o in model.opset_import if o.domain == ""] == [OPSET]
        assert [i.name for i in model.graph.input] == entry["inputs"]
    # three transformer graphs (start, step_1, step_2) share one copy of its weights
    loaded = load_model(checkpoint)
    n_bytes = sum(t.numel() * 4 for m in (loaded.vae, loaded.var) for t in m.state_dict().values())
    assert (exported / WEIGHTS).stat().st_size < 1.2 * n_bytes


@pytest.mark.parametrize("decoding", ["greedy", "expected"])
def test_onnx_runner_matches_torch(exported: Path, checkpoint: Path, decoding: str) -> None:
    loaded = load_model(checkpoint)
    vae, var = loaded.vae.eval(), loaded.var.eval()
    rgb_B3SS = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        result = rollout(
            vae, var, encode_image(vae, rgb_B3SS), sampling_for(decoding), rgb_B3HW=rgb_B3SS
        )
        pred_torch = vae.fhat_to_img(result.f_hat_BChw).mean(dim=1, keepdim=True).numpy()
    gen = OnnxModel(exported).predict(rgb_B3SS.numpy(), decoding)
    for idx_torch, idx_onnx in zip(result.idx_Bl, gen.idx_K, strict=True):
        if decoding == "greedy":  # the chosen tokens are the rollout: identical
            np.testing.assert_array_equal(idx_onnx, idx_torch.numpy())
    np.testing.assert_allclose(gen.pred_B1SS, pred_torch, rtol=0, atol=PRED_ATOL)
    assert np.ptp(pred_torch) > 1e-3  # a map, not a constant: the test can fail


@pytest.mark.parametrize("decoding", ["greedy", "expected"])
def test_predictor_depth_maps_match(exported: Path, checkpoint: Path, decoding: str) -> None:
    """Images of any size through both predictors: same preprocessing, same depth."""
    images = _images(3)
    sampling = sampling_for(decoding)
    torch_results = DepthPredictor.from_pretrained(checkpoint, sampling=sampling).predict_images(
        images, batch_size=2, scales=True
    )
    onnx_results = OnnxPredictor(exported, sampling=sampling).predict_images(
        images, batch_size=2, scales=True
    )
    for ours, theirs in zip(onnx_results, torch_results, strict=True):
        assert ours.depth.shape == theirs.depth.shape
        np.testing.assert_allclose(ours.pred, theirs.pred, rtol=0, atol=PRED_ATOL)
        np.testing.assert_allclose(ours.depth, theirs.depth, rtol=DEPTH_RTOL)
        assert len(ours.scales) == len(theirs.scales) == 3
        np.testing.assert_allclose(ours.scales[0], theirs.scales[0], rtol=0, atol=PRED_ATOL)


def test_cli_predict_with_onnxruntime_backend(exported: Path, checkpoint: Path, tmp_path) -> None:
    from PIL import Image

    Image.fromarray(random_rgb(30, 44, seed=3)).save(tmp_path / "scene.png")
    for backend, model in (("torch", checkpoint), ("onnxruntime", exported)):
        argv = ["predict", "-q", str(tmp_path / "scene.png"), "-o", str(tmp_path / backend)]
        argv += ["--model", str(model), "--backend", backend, "--device", "cpu"]
        assert main(argv) == 0
    onnx_depth = np.load(tmp_path / "onnxruntime" / "scene_depth.npy")
    torch_depth = np.load(tmp_path / "torch" / "scene_depth.npy")
    np.testing.assert_allclose(onnx_depth, torch_depth, rtol=DEPTH_RTOL)


def test_sampling_is_refused_naming_the_option(exported: Path) -> None:
    with pytest.raises(DepthcoreError, match="decoding 'sample' is not exported"):
        OnnxPredictor(exported, sampling=sampling_for("sample"))
    with pytest.raises(DepthcoreError, match="--samples is not supported"):
        OnnxPredictor(exported).predict_images(_images(1), samples=2)


def test_bad_export_folders_fail_in_one_line(exported: Path, tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no manifest.json"):
        OnnxModel(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((exported / MANIFEST).read_text())
    manifest["space"] = "metres"
    (broken / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"manifest.json: key 'space'"):
        OnnxModel(broken)
    manifest["space"] = "sqrt_disparity"
    (broken / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"graph 'encoder': file .*encoder.onnx missing"):
        OnnxModel(broken)


def test_export_refuses_to_overwrite(exported: Path, checkpoint: Path, capsys) -> None:
    assert main(["export", "--model", str(checkpoint), "-o", str(exported)]) == 1
    assert "already exists (pass --force to replace it)" in capsys.readouterr().err
    other = exported.parent / "not_an_export"
    other.mkdir()
    (other / "keep.txt").write_text("a user's file")
    argv = ["export", "--model", str(checkpoint), "-o", str(other), "--force"]
    assert main(argv) == 1
    assert "not an export folder (no manifest.json); not replacing it" in capsys.readouterr().err
    assert (other / "keep.txt").is_file()


def test_regression_baseline_exports_as_one_graph(tmp_path) -> None:
    torch.manual_seed(0)
    net = create_regression("tiny", backbone=TEST_PIXEL_ENCODER, image_size=32).eval()
    path = tmp_path / "baseline.safetensors"
    save_regression(path, net, meta={"space": "sqrt_disparity", "image_size": 32})
    out = tmp_path / "baseline_onnx"
    assert main(["export", "--model", str(path), "-o", str(out)]) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["kind"] == "regression" and list(manifest["graphs"]) == ["regression"]
    images = _images(2)
    ours = OnnxPredictor(out).predict_images(images)
    theirs = DepthPredictor.from_pretrained(path).predict_images(images)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.pred, b.pred, rtol=0, atol=PRED_ATOL)
        assert np.ptp(b.pred) > 1e-4
