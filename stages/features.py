"""Stage ``features``: cache the frozen tokenizer's depth features and image prefixes.

``python -m stages.features --params params.yaml`` writes ``<features.out_dir>/<split>.h5``
for every split in ``features.splits``.
"""

from __future__ import annotations

from collections.abc import Sequence

from depthcore.training.feature_cache import FeaturesConfig, run_features
from stages.common import load_section, run_stage, stage_args


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args("Cache f_D and the image prefix of every frame.", argv)

    def body() -> None:
        run_features(load_section("features", FeaturesConfig, args.params))

    run_stage("features", body)


if __name__ == "__main__":
    main()
