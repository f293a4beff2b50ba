"""Stage ``train``: train one model of the comparison on the cached features.

``python -m stages.train --params params.yaml --objective depthart|var_tf|regression``
writes ``<train.out_dir>/<objective>/{model.safetensors,train_metrics.json,
mlflow_run.json,ckpt/}``. ``depthart`` and ``var_tf`` train the transformer with that
objective; ``regression`` trains the timm regression baseline on the same frames
with the same steps, batch and optimiser (the objectives: the registry
:mod:`depthcore.training.objectives`). Reads the ``train`` and ``tracking`` sections.
Under ``torchrun --nproc_per_node N -m stages.train ...`` the same command trains
data-parallel. Resuming and the checkpoint
fingerprint: :mod:`depthcore.training.launch`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from depthcore.config import TrackingConfig
from depthcore.training.launch import TRAINERS, train_objective
from depthcore.training.train_config import TrainConfig
from stages.common import load_section, run_stage, stage_args


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--objective", required=True, choices=sorted(TRAINERS))


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args(
        "Train DepthVAR (DepthART or teacher forcing) or the regression baseline.", argv, _extra
    )

    def body() -> None:
        cfg = load_section("train", TrainConfig, args.params)
        tracking = load_section("tracking", TrackingConfig, args.params)
        train_objective(cfg, args.objective, tracking)

    run_stage(f"train-{args.objective}", body)


if __name__ == "__main__":
    main()
