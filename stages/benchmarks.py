"""Write the embedded zero-shot benchmarks (NYUv2, iBims-1, TUM RGB-D, ETH3D formats).

``python -m stages.benchmarks --params params.yaml`` writes ``<benchmarks.out_dir>/<name>/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from depthcore.synth.benchmarks import BenchmarksConfig, generate_benchmarks
from stages.common import load_section, run_stage, stage_args


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args(__doc__.splitlines()[0], argv)

    def body() -> None:
        cfg = load_section("benchmarks", BenchmarksConfig, args.params)
        for name, n in generate_benchmarks(cfg).items():
            print(f"benchmarks: {name}: {n} frames -> {Path(cfg.out_dir) / name}")

    run_stage("benchmarks", body)


if __name__ == "__main__":
    main()
