"""Stage ``train``: train the transformer with one objective on the cached features.

``python -m stages.train --params params.yaml --objective depthart|var_tf`` writes
``<train.out_dir>/<objective>/{model.safetensors,train_metrics.json,
mlflow_run.json,ckpt/}``. Under ``torchrun --nproc_per_node N -m stages.train ...``
the same command trains data-parallel.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from depthcore.config import load_section
from depthcore.training.trainer import TrainConfig, run_training
from stages.common import run_stage, stage_args


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--objective", required=True, choices=["depthart", "var_tf"])


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args(
        "Train DepthVAR with the DepthART or teacher-forcing objective.", argv, _extra
    )

    def body() -> None:
        run_training(load_section("train", TrainConfig, args.params), args.objective)

    run_stage(f"train-{args.objective}", body)


if __name__ == "__main__":
    main()
