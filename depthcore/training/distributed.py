"""Data-parallel helpers: the same training code runs alone or under ``torchrun``.

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``;
without them everything here is a no-op for a single process. The backend is
gloo on CPU and NCCL on CUDA.

Gradients are averaged with one coalesced ``all_reduce`` after ``backward``
rather than through ``DistributedDataParallel``: the DepthART objective calls
the transformer's KV-cached rollout methods as well as ``forward``, and DDP
only synchronises what goes through ``forward`` of its wrapper. Averaging the
gradients explicitly is exactly what DDP computes, for any objective.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from depthcore.device import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if resolved.startswith("cuda") else "gloo"
        if resolved.startswith("cuda"):
            torch.cuda.set_device(resolved)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=resolved)


def shutdown_distributed() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_parameters(params: Iterable[torch.Tensor], info: DistInfo) -> None:
    """Make every rank start from rank 0's weights (they already agree when seeded alike)."""
    if not info.distributed:
        return
    for p in params:
        dist.broadcast(p.data, src=0)


def average_gradients(params: Iterable[torch.nn.Parameter], info: DistInfo) -> None:
    """Replace each gradient by its mean over ranks, in one flat all-reduce."""
    if not info.distributed:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def mean_over_ranks(value: float, info: DistInfo) -> float:
    """The mean of a scalar over ranks (for logging the global loss)."""
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / info.world_size


def max_divergence(params: Iterable[torch.Tensor], info: DistInfo) -> float:
    """Largest |w_rank - w_rank0| over all weights and ranks (0.0 when in sync or alone).

    Checked at the end of training: ranks that drifted apart (a non-deterministic
    op, a rank that skipped a step) would otherwise go unnoticed, since only
    rank 0 saves the model.
    """
    if not info.distributed:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1).float() for p in params])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    diff = (flat - reference).abs().max().reshape(1).double()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff.item())
