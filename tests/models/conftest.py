"""Model tests run single-threaded.

The tiny models' ops are far too small to gain from intra-op threads, and on a shared
machine OpenMP barriers make two threads up to 10x slower than one (measured).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
