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
from torch.distributed.nn.functional import all_reduce as autograd_all_reduce

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


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """``BatchNorm2d`` that normalises with the statistics of the GLOBAL batch in a DDP job.

    Each rank's plain BatchNorm would normalise over its own slice of the batch, so a
    2-rank run would differ from the single process with the same global batch, and the
    ranks' running statistics would drift apart. Sums, then squared deviations, are
    all-reduced (with autograd, so the backward pass sees the other ranks' samples as
    one batch would) on any backend, gloo included, where ``SyncBatchNorm`` needs a GPU.
    Alone, or in evaluation, it is exactly ``BatchNorm2d``; the state_dict keys are
    the same.
    """

    def forward(self, x_BChw: torch.Tensor) -> torch.Tensor:
        alone = not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1
        if alone or not self.training:
            return super().forward(x_BChw)
        C = x_BChw.shape[1]
        x = x_BChw.float()
        # two passes (mean, then squared deviations), as precise as the native kernel
        count = x.new_tensor([x.numel() / C])
        sums = autograd_all_reduce(torch.cat([x.sum((0, 2, 3)), count]))
        total = sums[-1]
        mean_C = sums[:C] / total
        dev = x - mean_C.view(1, C, 1, 1)
        var_C = autograd_all_reduce((dev * dev).sum((0, 2, 3))) / total
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum
                m = 1.0 / float(self.num_batches_tracked) if m is None else m
                self.running_mean.mul_(1 - m).add_(mean_C.detach(), alpha=m)
                unbiased = var_C.detach() * total / (total - 1).clamp_min(1)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        y = dev * torch.rsqrt(var_C + self.eps).view(1, C, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, C, 1, 1) + self.bias.view(1, C, 1, 1)
        return y.to(x_BChw.dtype)


def globalise_batch_norms(module: torch.nn.Module) -> int:
    """Swap every ``BatchNorm2d`` in ``module`` for :class:`GlobalBatchNorm2d` (in place,
    weights and statistics kept); returns how many. Other batch-norm kinds are refused:
    they would silently normalise per rank."""
    swapped = 0
    for name, child in list(module.named_children()):
        if type(child) is torch.nn.BatchNorm2d:
            glob = GlobalBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine,
                child.track_running_stats,
            ).to(next(iter(child.state_dict().values())).device)  # fmt: skip
            glob.load_state_dict(child.state_dict())
            setattr(module, name, glob)
            swapped += 1
        elif isinstance(child, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(
            child, GlobalBatchNorm2d
        ):
            raise ValueError(
                f"{name}: {type(child).__name__} would normalise each rank's slice of the "
                f"batch on its own; only BatchNorm2d is made global for DDP"
            )
        else:
            swapped += globalise_batch_norms(child)
    return swapped


def synced_state(module: torch.nn.Module) -> list[torch.Tensor]:
    """What must agree across ranks: the parameters and the batch-norm statistics."""
    stats = [b for n, b in module.named_buffers() if n.rsplit(".", 1)[-1].startswith("running_")]
    return [*module.parameters(), *stats]
