"""Stage ``benchmarks``: render the embedded zero-shot benchmark sets in their real formats.

Writes ``<out_dir>/<name>/`` for each configured benchmark (NYUv2 ``.mat`` files,
iBims-1 ``.mat`` per image, TUM PNG sequences, ETH3D raw float32 depth), which the
evaluate stage reads with the same readers as the real datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from depthcore.config import load_section
from depthcore.io import atomic_path
from depthcore.params import BenchmarksConfig
from depthcore.stage import run_stage, stage_args
from depthcore.synth.benchmarks import generate_benchmark


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args(__doc__.splitlines()[0], argv)

    def body() -> None:
        cfg = load_section("benchmarks", BenchmarksConfig, args.params)
        with atomic_path(cfg.out_dir) as tmp:
            for i, name in enumerate(cfg.names):
                generate_benchmark(
                    name, tmp / name, cfg.images, cfg.seed + 100 * i, height=cfg.height,
                    width=cfg.width,
                )  # fmt: skip
                print(f"benchmarks: {name}: {cfg.images} frames -> {Path(cfg.out_dir) / name}")

    run_stage("benchmarks", body)


if __name__ == "__main__":
    main()
