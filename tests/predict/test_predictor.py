"""DepthPredictor on a tiny random-weight checkpoint: shapes, scales, samples, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthcore.errors import CheckpointError, DataError, DepthcoreError
from depthcore.models.generate import SamplingConfig
from depthcore.predict.predictor import DepthPredictor
from tests.helpers.checkpoints import random_rgb


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint) -> DepthPredictor:
    loaded = DepthPredictor.from_pretrained(tiny_checkpoint)
    loaded.checkpoint_path = tiny_checkpoint  # for tests that reload it with other options
    return loaded


def predictor_path(predictor: DepthPredictor):
    return predictor.checkpoint_path


def test_protocol_predict_batch(predictor) -> None:
    assert predictor.space == "sqrt_disparity" and predictor.image_size == 64
    rgb_BHW3 = np.stack([random_rgb(30, 40, s) for s in range(2)])
    pred_BHW = predictor.predict_batch(rgb_BHW3)
    assert predictor.fit == "stretch"  # the checkpoint's (default) training preprocessing
    assert pred_BHW.dtype == np.float32 and pred_BHW.shape == (2, 64, 64)
    assert np.isfinite(pred_BHW).all()
    padded = DepthPredictor.from_pretrained(predictor_path(predictor), fit="pad")
    assert padded.predict_batch(rgb_BHW3).shape == (2, 48, 64)  # aspect kept, border cropped
    with pytest.raises(DataError, match="uint8"):
        predictor.predict_batch(rgb_BHW3.astype(np.float32))


@pytest.mark.parametrize("shape", [(37, 91), (5, 3), (64, 64)])
def test_call_maps_back_to_the_input_size(predictor, shape) -> None:
    result = predictor(random_rgb(*shape), scales=True)
    assert result.depth.shape == result.pred.shape == shape
    assert result.depth.dtype == np.float32 and (result.depth > 0).all()
    assert len(result.scales) == 6 and all(s.shape == shape for s in result.scales)
    # the cumulative prediction after the last scale is the prediction itself
    np.testing.assert_allclose(result.scales[-1], result.pred, atol=1e-5)
    assert result.std is None


def test_model_resolution_input_matches_predict_batch(predictor) -> None:
    rgb = random_rgb(64, 64, seed=3)
    np.testing.assert_allclose(
        predictor(rgb).pred, predictor.predict_batch(rgb[None])[0], atol=1e-5
    )


def test_samples_give_mean_and_std(predictor) -> None:
    result = predictor(random_rgb(20, 30), samples=4, seed=1)
    assert result.std.shape == (20, 30)
    assert (result.std >= 0).all() and result.std.max() > 0


def test_seed_determinism(predictor) -> None:
    """Official sampling: the seed fixes the map. Expected decoding (default): no seed needed."""
    sampler = DepthPredictor.from_pretrained(predictor_path(predictor), sampling=SamplingConfig())
    rgb = random_rgb(24, 32, seed=5)
    a, b = sampler(rgb, seed=7), sampler(rgb, seed=7)
    c = sampler(rgb, seed=8)
    assert np.array_equal(a.depth, b.depth)
    assert not np.array_equal(a.pred, c.pred)
    assert predictor.sampling.decoding == "expected"
    e7, e8 = predictor(rgb, seed=7), predictor(rgb, seed=8)
    assert np.array_equal(e7.pred, e8.pred)
    assert not np.array_equal(e7.pred, a.pred)


def test_missing_or_foreign_checkpoint(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="nope.safetensors: checkpoint not found"):
        DepthPredictor.from_pretrained(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="no MLmodel"):
        DepthPredictor.from_pretrained(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_request_without_cuda_is_a_clear_error(tiny_checkpoint) -> None:
    with pytest.raises(DepthcoreError, match="CUDA is not available"):
        DepthPredictor.from_pretrained(tiny_checkpoint, device="cuda")


@pytest.mark.gpu
def test_cuda_prediction_is_finite_and_seeded(tiny_checkpoint) -> None:
    predictor = DepthPredictor.from_pretrained(tiny_checkpoint, device="cuda")
    rgb = random_rgb(30, 40)
    a, b = predictor(rgb, samples=2, seed=3), predictor(rgb, samples=2, seed=3)
    assert a.depth.shape == (30, 40) and np.isfinite(a.depth).all()
    assert np.array_equal(a.pred, b.pred)
