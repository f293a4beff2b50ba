"""Stage ``preprocess``: Hypersim download folder -> HDF5 shards, ``stats.csv``, ``dropped.csv``.

``python -m stages.preprocess --params params.yaml`` reads the ``preprocess`` section and
writes ``<out_dir>/<split>/shard_*.h5``, ``stats.csv``, ``dropped.csv`` and ``config.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

from depthcore.data.hypersim.preprocess import PreprocessConfig, preprocess
from stages.common import load_section, run_stage, stage_args


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args("Preprocess Hypersim into HDF5 shards.", argv)

    def body() -> None:
        cfg = load_section("preprocess", PreprocessConfig, args.params)
        stats = preprocess(cfg)
        counts = stats["split"].value_counts().to_dict() if len(stats) else {}
        print(f"preprocess: {len(stats)} frames kept {counts} -> {cfg.out_dir}")

    run_stage("preprocess", body)


if __name__ == "__main__":
    main()
