"""Trivial depth predictors that give every results table a floor to beat.

Both ignore the image content. A trained model that does not rank clearly
above them on every benchmark has learnt nothing useful; they also let the
evaluation be tested end to end without any trained weights. With :class:`DepthModel`,
the interface every predictor offers, they sit beside the models: the evaluation scores
them and :mod:`depthcore.predict` loads them by name, neither importing the other.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from depthcore.errors import DataError


@runtime_checkable
class DepthModel(Protocol):
    """What the evaluation needs from a predictor (see docs/architecture.md)."""

    space: str

    def predict_batch(self, rgb_BHW3: np.ndarray) -> np.ndarray:
        """Depth-like maps ``pred_BHW`` float32 in ``space`` for uint8 images."""
        ...


def _check_batch(rgb_BHW3: np.ndarray) -> tuple[int, int, int]:
    rgb_BHW3 = np.asarray(rgb_BHW3)
    if rgb_BHW3.ndim != 4 or rgb_BHW3.shape[-1] != 3 or rgb_BHW3.dtype != np.uint8:
        raise DataError(
            f"predict_batch expects uint8 images (B, H, W, 3), got {rgb_BHW3.dtype} "
            f"{rgb_BHW3.shape}"
        )
    B, H, W, _ = rgb_BHW3.shape
    return B, H, W


class ConstantPlane:
    """Predicts the same depth everywhere: a fronto-parallel plane.

    After alignment this is the best constant (mean or median of the ground
    truth), the weakest sensible baseline.
    """

    space = "depth"

    def predict_batch(self, rgb_BHW3: np.ndarray) -> np.ndarray:
        B, H, W = _check_batch(rgb_BHW3)
        return np.ones((B, H, W), dtype=np.float32)


class VerticalGradient:
    """Depth growing linearly from the bottom row (1) to the top row (2).

    The "floor in front, far wall at the horizon" prior of indoor photos: it
    beats :class:`ConstantPlane` wherever the scene has that layout.
    """

    space = "depth"

    def predict_batch(self, rgb_BHW3: np.ndarray) -> np.ndarray:
        B, H, W = _check_batch(rgb_BHW3)
        column_H = np.linspace(2.0, 1.0, H, dtype=np.float32)
        return np.broadcast_to(column_H[None, :, None], (B, H, W)).copy()


#: Names accepted as ``reference:<name>`` by :func:`depthcore.predict.predictor.load_depth_model`.
REFERENCE_PREDICTORS: dict[str, type] = {
    "constant_plane": ConstantPlane,
    "vertical_gradient": VerticalGradient,
}

__all__ = ["REFERENCE_PREDICTORS", "ConstantPlane", "DepthModel", "VerticalGradient"]
