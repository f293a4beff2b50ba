"""Stage ``pretrain``: next-scale modelling of the RGB frames' own tokens, before depth.

``python -m stages.pretrain --params params.yaml`` writes ``<pretrain.out_dir>/
{var.safetensors,pretrain_metrics.json,mlflow_run.json,ckpt/}``; ``train.init_pretrain``
points the depth trainings (DepthART and VAR-TF) at its ``var.safetensors``. Why and
how: :mod:`depthcore.training.pretrain`.
"""

from __future__ import annotations

from collections.abc import Sequence

from depthcore.config import TrackingConfig
from depthcore.training.pretrain import PretrainConfig, run_pretraining
from stages.common import load_section, run_stage, stage_args


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args("Pretrain DepthVAR on next-scale modelling of the RGB tokens.", argv)

    def body() -> None:
        cfg = load_section("pretrain", PretrainConfig, args.params)
        run_pretraining(cfg, load_section("tracking", TrackingConfig, args.params))

    run_stage("pretrain", body)


if __name__ == "__main__":
    main()
