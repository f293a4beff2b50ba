"""Sharded batch prediction: ``depthart predict`` under ``torchrun`` splits the inputs.

Each rank takes whole batches of the one-process run: batch j (of the sorted input
list cut into ``--batch-size`` pieces) belongs to rank ``j % WORLD_SIZE``. A batch is
then computed exactly as one process computes it (same images, same seed
``seed + start``), so the outputs are byte-identical to a one-process run with the
same batch size, sampled decoding included, whatever the number of ranks. No
collective communication: ranks share nothing but the output folder, and each image's
files are written under distinct names.

Resuming (``--resume``): an image is finished when every file it should produce
exists; each file is written atomically (temporary name, then rename: see
:func:`depthcore.io.atomic_path`), so an existing file is a whole file. A batch whose
images are all finished is skipped; a batch with any unfinished image is recomputed
(as a whole, so its images get the same numbers as in one uninterrupted run) and
rewritten.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from depthcore.errors import DepthcoreError


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` ranks."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    def batch_starts(self, n_jobs: int, batch_size: int) -> list[int]:
        """Start indices of this rank's batches (batch j goes to rank j % world)."""
        starts = range(0, n_jobs, batch_size)
        return [start for j, start in enumerate(starts) if j % self.world == self.rank]

    @property
    def label(self) -> str:
        """``rank r/w`` for log lines ("" for one process)."""
        return "" if self.world == 1 else f"rank {self.rank}/{self.world}: "


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard:
    """The shard ``torchrun`` describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); one
    process when they are absent."""
    env = os.environ if env is None else env
    values = {}
    for key, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        text = env.get(key, default)
        try:
            values[key] = int(text)
        except ValueError:
            raise DepthcoreError(f"environment {key}={text!r}: not an integer") from None
    shard = Shard(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
    if shard.world < 1 or not 0 <= shard.rank < shard.world:
        raise DepthcoreError(f"environment RANK={shard.rank} WORLD_SIZE={shard.world}: invalid")
    return shard


def output_files(stem: Path, outputs: Iterable[str], scales: bool, samples: int) -> list[Path]:
    """The files ``depthart predict`` writes for one image under ``stem`` (see its epilog)."""
    names = {
        "npy": "_depth.npy",
        "png": "_depth.png",
        "color": "_depth_color.png",
        "ply": ".ply",
    }
    suffixes = [names[o] for o in sorted(outputs)]
    if scales:
        suffixes.append("_scales.png")
    if samples > 0:
        suffixes += ["_std.npy", "_std.png"]
    return [stem.with_name(f"{stem.name}{suffix}") for suffix in suffixes]


def is_finished(stem: Path, outputs: Iterable[str], scales: bool, samples: int) -> bool:
    """Whether every output file of the image at ``stem`` exists (each is whole: atomic)."""
    return all(path.is_file() for path in output_files(stem, outputs, scales, samples))
