"""A one-node ``torchrun`` command line on a free loopback port, for the DDP tests."""

from __future__ import annotations

import socket
import sys


def torchrun(nproc: int, *module_args: str) -> list[str]:
    """``python -m torch.distributed.run`` with ``nproc`` local ranks running ``-m ...``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
        "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
        "--master_port", str(port), "-m", *module_args,
    ]  # fmt: skip
