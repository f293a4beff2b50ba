"""Which frames each training step reads: a pure function of (seed, step, rank).

Every step's batch depends only on the seed, the step and the rank, never on how many
steps ran before, so a run resumed from a checkpoint reads the same frames as an
uninterrupted one, and under ``torchrun`` each rank takes its own slice of the global batch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch

from depthcore.data.features import FeatureDataset
from depthcore.errors import DataError


@functools.lru_cache(maxsize=8)
def _epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


def step_indices(
    step: int, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
) -> list[int]:
    """Frame indices of ``rank``'s slice of the global batch of ``step``.

    The frames form an endless stream of seeded per-epoch permutations; the
    global batch of step s is positions [s*B*W, (s+1)*B*W) of it, rank r takes
    the r-th B of them. The batch depends on (seed, step, rank) only, so a
    resumed run reads exactly what an uninterrupted one would, and the ranks
    of a DDP job never read the same position.
    """
    if n <= 0:
        raise DataError("cannot sample batches from an empty feature cache")
    start = (step * world_size + rank) * batch_size
    out = []
    for p in range(start, start + batch_size):
        out.append(int(_epoch_permutation(n, seed, p // n)[p % n]))
    return out


class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Yields :func:`step_indices` for steps ``start_step .. end_step - 1``."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        start_step: int,
        end_step: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.args = (n, batch_size, seed, rank, world_size)
        self.start_step, self.end_step = start_step, end_step

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def __iter__(self) -> Iterator[list[int]]:
        n, batch_size, seed, rank, world_size = self.args
        for step in range(self.start_step, self.end_step):
            yield step_indices(step, n, batch_size, seed, rank, world_size)


def _batch_as_is(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


def step_loader(
    dataset: FeatureDataset,
    *,
    batch_size: int,
    seed: int,
    start_step: int,
    end_step: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
) -> torch.utils.data.DataLoader:
    """DataLoader of the batches of steps ``start_step..end_step-1`` (batched HDF5 reads)."""
    sampler = StepBatchSampler(
        len(dataset), batch_size, seed, start_step, end_step, rank, world_size
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=_batch_as_is,
        num_workers=num_workers,
        persistent_workers=False,
    )
