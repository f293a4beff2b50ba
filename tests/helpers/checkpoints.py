"""A tiny random-weight DepthART checkpoint and random photos, shared by the predict tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthcore.models import create_model, resolve_config
from depthcore.models.checkpoint import save_model


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``create_model("tiny")`` with seeded random weights, saved as safetensors."""
    torch.manual_seed(1234)
    vae, var = create_model("tiny")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_model(path, vae, var, resolve_config("tiny"), meta={"space": "sqrt_disparity"})
    return path


def random_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth-ish random test image (uint8 HxWx3)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (max(1, h // 4), max(1, w // 4), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR))
