"""Train/eval parity: a benchmark frame reaches the model exactly as a training frame does.

Training path: preprocess (``prepare_frame``: resize to the stored resolution) -> HDF5
shard -> features stage (``frame_at_size`` + ``encode_batch``). Evaluation path:
benchmark reader -> ``evaluate`` -> ``DepthPredictor.predict_batch``. The same RGB must
give the same model input tensor and the same image prefix on both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from depthcore.data.benchmarks.registry import make_reader
from depthcore.data.frames import iter_frames
from depthcore.data.hypersim import preprocess
from depthcore.data.hypersim.reader import FrameId, HypersimFrame
from depthcore.data.shards import ShardDataset, ShardWriter
from depthcore.evaluation.run import EvaluateConfig, evaluate
from depthcore.models import create_model, image_prefix, resolve_config
from depthcore.models.checkpoint import save_model
from depthcore.predict.predictor import DepthPredictor
from depthcore.spaces import rgb_to_model
from depthcore.synth.benchmarks import generate_benchmark
from depthcore.training.feature_cache import encode_batch


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> DepthPredictor:
    torch.manual_seed(0)
    vae, var = create_model("tiny")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_model(path, vae, var, resolve_config("tiny"), meta={"space": "sqrt_disparity"})
    return DepthPredictor.from_pretrained(path)


def _training_batch(sample, size: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The benchmark frame pushed through preprocess, a shard and the features stage."""
    frame = HypersimFrame(
        sample.rgb_HW3, np.where(sample.valid_HW, sample.depth_HW, np.nan), sample.valid_HW
    )
    monkeypatch.setattr(preprocess, "load_frame", lambda *_: frame)
    cfg = preprocess.PreprocessConfig(
        resolution=(size, size), filters=preprocess.FilterConfig(max_invalid_frac=1.0)
    )
    arrays, stats = preprocess.prepare_frame(
        tmp_path, FrameId("ai_001_001", "cam_00", 0), None, cfg
    )
    assert arrays is not None, stats
    with ShardWriter(
        tmp_path / "train", shard_size=4, space=cfg.space, height=size, width=size
    ) as writer:
        writer.add(arrays)
    return next(iter_frames(ShardDataset(tmp_path, "train"), size, batch_size=1))


def test_benchmark_frame_sees_the_training_tensor(
    predictor: DepthPredictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = generate_benchmark("nyu", tmp_path / "nyu", 2, 5, height=48, width=64)
    reader = make_reader("nyu", root)
    seen: list[torch.Tensor] = []
    infer = predictor._infer

    def spy(rgb_B3SS: torch.Tensor, **kwargs):
        seen.append(rgb_B3SS.clone())
        return infer(rgb_B3SS, **kwargs)

    monkeypatch.setattr(predictor, "_infer", spy)
    cfg = EvaluateConfig(alignments=("lsq",), batch_size=1, num_panels=0)
    evaluate(predictor, {"nyu": reader}, cfg, tmp_path / "out")
    assert len(seen) == 2
    for sample, eval_input in zip(reader, seen, strict=True):
        batch = _training_batch(sample, predictor.image_size, tmp_path / sample.name, monkeypatch)
        train_input = rgb_to_model(batch.rgb)
        assert eval_input.shape == train_input.shape == (1, 3, 64, 64)
        assert torch.equal(eval_input, train_input)
        _, train_prefix = encode_batch(predictor.vae, batch, "cpu")
        with torch.no_grad():
            eval_prefix = image_prefix(predictor.vae, eval_input)
        assert torch.equal(eval_prefix, train_prefix)


def test_padding_is_opt_in_and_differs(predictor: DepthPredictor) -> None:
    """The aspect-keeping pad of earlier versions would feed a different tensor."""
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    stretched, _ = predictor.model_input([rgb])
    predictor.fit = "pad"
    try:
        padded, (box,) = predictor.model_input([rgb])
    finally:
        predictor.fit = "stretch"
    assert (box.height, box.width) == (48, 64)
    assert not torch.equal(stretched, padded)
