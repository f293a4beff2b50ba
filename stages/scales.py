"""Stage ``scales``: the per-scale refinement curve and figures of one trained model.

``python -m stages.scales --params params.yaml --objective depthart|var_tf|regression`` writes
``<train.out_dir>/<objective>/{scales.csv,scales.json,figures/}``. Apart from ``train``
so that editing a metric or a figure rescores the model without retraining it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from depthcore.evaluation.scales import run_scales
from depthcore.training.train_config import TrainConfig
from stages.common import load_section, run_stage, stage_args


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--objective", required=True, choices=["depthart", "var_tf", "regression"])


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args("Per-scale validation AbsRel of a trained model.", argv, _extra)

    def body() -> None:
        run_scales(load_section("train", TrainConfig, args.params), args.objective)

    run_stage(f"scales-{args.objective}", body)


if __name__ == "__main__":
    main()
