"""The benchmark registry: pick a reader by name, so a typo fails loudly with the choices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from depthcore.data.benchmarks.base import BenchmarkReader
from depthcore.data.benchmarks.eth3d import ETH3DReader
from depthcore.data.benchmarks.ibims import IBims1Reader
from depthcore.data.benchmarks.nyu import NYUv2Reader
from depthcore.data.benchmarks.tum import TUMReader
from depthcore.data.folder import FolderReader
from depthcore.errors import DepthcoreError

READERS: dict[str, type[BenchmarkReader]] = {
    "nyu": NYUv2Reader,
    "ibims": IBims1Reader,
    "tum": TUMReader,
    "eth3d": ETH3DReader,
    "folder": FolderReader,
}


def make_reader(
    name: str, root: str | Path, *, format: str | None = None, **kw: Any
) -> BenchmarkReader:
    """Build the reader for benchmark ``name`` over the folder ``root``.

    ``format`` picks the reader when the name is the user's own (``format: folder``
    for a folder dataset evaluated as ``evaluate.benchmarks.my_rooms``); by default
    the name is the format.
    """
    key = format or name
    if key not in READERS:
        what = "format" if format else "benchmark"
        choices = sorted(READERS)
        raise DepthcoreError(f"unknown {what} {key!r} for {name!r}; choose one of {choices}")
    return READERS[key](root, **kw)
