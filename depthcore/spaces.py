"""The one home of the numeric conventions between pixels, depth and model tensors.

Every model input and output passes through these functions, so training,
evaluation and prediction cannot drift apart:

* RGB: uint8 -> float in [-1, 1] (:func:`rgb_to_model`), the VQ-VAE's range;
* depth targets: one normalised map replicated to the VQ-VAE's 3 channels
  (:func:`target_to_depth3`);
* prediction spaces (:data:`SPACES`): ``depth``, ``disparity``, ``sqrt_disparity``
  (percentiles 2..98 of ``sqrt(1/z)`` mapped to [-1, 1], our default) and
  ``scale_depth`` (``2 z / q98(z) - 1``, the official DepthART target). A model's
  prediction is affine to the truth in its own space: :func:`depth_to_space` and
  :func:`space_to_depth` move metric depth in and out of it;
* :func:`normalised_to_depth` turns a normalised prediction into positive depth
  up to scale by one documented convention (users' outputs, relative maps).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch

Space = Literal["depth", "disparity", "sqrt_disparity", "scale_depth"]
SPACES: tuple[str, ...] = get_args(Space)

#: Smallest depth any aligned or converted prediction may take (keeps logs and ratios finite).
MIN_DEPTH = 1e-6

#: The far/near depth ratio assumed when a normalised sqrt-disparity prediction (whose
#: offset is lost) must be shown as depth: 10 is a typical indoor range (0.6 m .. 6 m).
DEFAULT_NEAR_FAR_RATIO = 10.0


#: How every frame reaches the model's square input, in training, evaluation and prediction:
#: stretched to S x S by area resampling (``depthcore.data.transforms.resize_rgb``),
#: ignoring the aspect ratio, as the official DepthART recipe does. Checkpoints record it
#: (``input_fit``) and the predictor follows the checkpoint.
INPUT_FIT = "stretch"


def check_space(space: str) -> None:
    """Refuse a space name that no model is trained in."""
    if space not in SPACES:
        raise ValueError(f"unknown prediction space {space!r}; expected one of {list(SPACES)}")


def rgb_to_model(rgb_B3HW: torch.Tensor) -> torch.Tensor:
    """uint8 RGB -> float in [-1, 1], the convention every model input follows."""
    return rgb_B3HW.float() / 127.5 - 1.0


def target_to_depth3(target_BHW: torch.Tensor) -> torch.Tensor:
    """The normalised depth target replicated to the 3 channels the VQ-VAE takes."""
    return target_BHW.float().unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def depth_to_space(depth: np.ndarray, space: str) -> np.ndarray:
    """Map metric depth into ``space`` (where a model's prediction is affine to the truth).

    ``scale_depth`` is depth up to an affine map, so it is treated as ``depth``.
    """
    check_space(space)
    depth = np.asarray(depth, dtype=np.float64)
    if space in ("depth", "scale_depth"):
        return depth
    safe = np.maximum(depth, MIN_DEPTH)
    if space == "disparity":
        return 1.0 / safe
    return np.sqrt(1.0 / safe)


def space_to_depth(
    values: np.ndarray, space: str, min_depth: float, max_depth: float
) -> np.ndarray:
    """Inverse of :func:`depth_to_space`, clipped to ``[min_depth, max_depth]`` and >= 1e-6.

    The clip is applied in the space first (a negative disparity has no depth),
    then again in depth so that all spaces end in the same range.
    """
    check_space(space)
    lo = max(float(min_depth), MIN_DEPTH)
    hi = float(max_depth)
    if not hi > lo:
        raise ValueError(f"empty depth range [{min_depth}, {max_depth}]")
    values = np.asarray(values, dtype=np.float64)
    if space in ("depth", "scale_depth"):
        depth = values
    elif space == "disparity":
        depth = 1.0 / np.clip(values, 1.0 / hi, 1.0 / lo)
    else:
        depth = 1.0 / np.clip(values, np.sqrt(1.0 / hi), np.sqrt(1.0 / lo)) ** 2
    return np.clip(depth, lo, hi)


def normalised_to_depth(
    pred: np.ndarray, space: str, near_far_ratio: float = DEFAULT_NEAR_FAR_RATIO
) -> np.ndarray:
    """Positive depth up to an unknown scale from a prediction in ``space`` (float32).

    * ``depth``: unchanged; ``disparity``: ``1 / p``;
    * ``scale_depth``: ``(p + 1) / 2``, depth in units of the 98th-percentile depth;
    * ``sqrt_disparity``: the offset is lost, so the near end ``p = +1`` is put at
      depth 1 and the far end ``p = -1`` at ``near_far_ratio``:
      ``s = s_far + (p + 1) / 2 * (1 - s_far)``, ``s_far = near_far_ratio ** -0.5``,
      clipped to ``>= s_far / 10``, and ``z = 1 / s**2``. This is a display
      convention, not a measurement: scores must never be computed from it.

    Every result is clipped to ``>= MIN_DEPTH``.
    """
    check_space(space)
    p = np.asarray(pred, dtype=np.float64)
    if space == "depth":
        rel = p
    elif space == "disparity":
        rel = 1.0 / np.maximum(p, MIN_DEPTH)
    elif space == "scale_depth":
        rel = (p + 1.0) / 2.0
    else:
        if near_far_ratio <= 1.0:
            raise ValueError(f"near_far_ratio must be > 1, got {near_far_ratio}")
        s_far = near_far_ratio**-0.5
        s = np.maximum(s_far + (p + 1.0) / 2.0 * (1.0 - s_far), s_far / 10.0)
        rel = 1.0 / s**2
    return np.maximum(rel, MIN_DEPTH).astype(np.float32)
