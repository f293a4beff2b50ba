"""The image inputs of the conditioning check: does a model look at the image at all?

Training logs the losses and the scales stage the AbsRel of each variant; both
take them from here so the two checks compare the same inputs.
"""

from __future__ import annotations

import torch

#: The image prefixes of the conditioning check: the frame's own, all zeros, the next frame's.
PREFIX_VARIANTS = ("real", "zero", "other")
#: With a pixel path, the two image routes blanked one at a time: the token prefix zeroed
#: with the real frame kept, and the real prefix with a grey frame (issue 24 item 3).
ROUTE_VARIANTS = ("zero_prefix", "zero_frame")


def prefix_variants(
    prefix_BLC: torch.Tensor, rgb_B3HW: torch.Tensor | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """The batch's image inputs (prefix, frames) as given, zeroed, and rolled by one
    frame (another image's).

    A model that uses the image scores worse (higher loss or AbsRel) with "zero" and
    "other" than with "real"; equal scores mean the image is ignored. The frames (for a
    model with a pixel path) change with the prefix: zeroed is a mid-grey frame.

    With frames, :data:`ROUTE_VARIANTS` follow: each route blanked alone, so a pixel path
    that makes the token prefix redundant shows as zero_prefix ~ real while zero_frame
    is worse (and the reverse for a model that reads the tokens).
    """
    zero_prefix = torch.zeros_like(prefix_BLC)
    if rgb_B3HW is None:
        return {
            "real": (prefix_BLC, None),
            "zero": (zero_prefix, None),
            "other": (prefix_BLC.roll(1, dims=0), None),
        }
    grey_rgb = torch.zeros_like(rgb_B3HW)
    return {
        "real": (prefix_BLC, rgb_B3HW),
        "zero": (zero_prefix, grey_rgb),
        "other": (prefix_BLC.roll(1, dims=0), rgb_B3HW.roll(1, dims=0)),
        "zero_prefix": (zero_prefix, rgb_B3HW),
        "zero_frame": (prefix_BLC, grey_rgb),
    }
