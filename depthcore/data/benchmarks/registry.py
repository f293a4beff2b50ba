"""The benchmark registry: pick a reader by name, so a typo fails loudly with the choices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from depthcore.data.benchmarks.base import BenchmarkReader
from depthcore.data.benchmarks.eth3d import ETH3DReader
from depthcore.data.benchmarks.ibims import IBims1Reader
from depthcore.data.benchmarks.nyu import NYUv2Reader
from depthcore.data.benchmarks.tum import TUMReader
from depthcore.errors import DepthcoreError

READERS: dict[str, type[BenchmarkReader]] = {
    "nyu": NYUv2Reader,
    "ibims": IBims1Reader,
    "tum": TUMReader,
    "eth3d": ETH3DReader,
}


def make_reader(name: str, root: str | Path, **kw: Any) -> BenchmarkReader:
    """Build the reader registered as ``name`` over the benchmark folder ``root``."""
    if name not in READERS:
        raise DepthcoreError(f"unknown benchmark {name!r}; choose one of {sorted(READERS)}")
    return READERS[name](root, **kw)
