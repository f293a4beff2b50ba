"""Where tensors live: the one device resolver of the package.

``auto`` takes the GPU when there is one; asking for CUDA on a machine without
it fails at once with a readable error instead of deep inside a kernel.
"""

from __future__ import annotations

import torch

from depthcore.errors import DepthcoreError


def resolve_device(device: str | torch.device, local_rank: int = 0) -> str:
    """``auto`` -> ``cuda:<local_rank>`` or ``cpu``; ``cuda`` -> ``cuda:<local_rank>``.

    Raises :class:`DepthcoreError` when CUDA is asked for and not available.
    """
    name = str(device)
    if name == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DepthcoreError(f"device {name!r} requested but CUDA is not available")
        return f"cuda:{local_rank}" if name == "cuda" else name
    if name not in ("cpu", "mps") and not name.startswith(("cpu:", "mps:")):
        raise DepthcoreError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)")
    return name
