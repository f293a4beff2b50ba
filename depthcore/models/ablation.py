"""The image inputs of the conditioning check: does a model look at the image at all?

Training logs the losses and the scales stage the AbsRel of each variant; both
take them from here so the two checks compare the same inputs.
"""

from __future__ import annotations

import torch

#: The image prefixes of the conditioning check: the frame's own, all zeros, the next frame's.
PREFIX_VARIANTS = ("real", "zero", "other")


def prefix_variants(
    prefix_BLC: torch.Tensor, rgb_B3HW: torch.Tensor | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """The batch's image inputs (prefix, frames) as given, zeroed, and rolled by one
    frame (another image's).

    A model that uses the image scores worse (higher loss or AbsRel) with "zero" and
    "other" than with "real"; equal scores mean the image is ignored. The frames (for a
    model with a pixel path) change with the prefix: zeroed is a mid-grey frame.
    """
    zero_rgb = None if rgb_B3HW is None else torch.zeros_like(rgb_B3HW)
    other_rgb = None if rgb_B3HW is None else rgb_B3HW.roll(1, dims=0)
    return {
        "real": (prefix_BLC, rgb_B3HW),
        "zero": (torch.zeros_like(prefix_BLC), zero_rgb),
        "other": (prefix_BLC.roll(1, dims=0), other_rgb),
    }
