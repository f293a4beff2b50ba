"""Stage ``scales``: the per-scale refinement curve and figures of one trained model.

``python -m stages.scales --params params.yaml --objective depthart|var_tf|regression`` reads
the ``scales`` section and writes ``<scales.models_dir>/<objective>/{scales.csv,scales.json,
figures/,exposure/}``. Apart from ``train`` so that editing a metric or a figure rescores the model
without retraining it; how it reads each objective's model is the objective's scales kind
in the registry (:mod:`depthcore.training.objectives`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from depthcore.evaluation.scales import ScalesConfig, run_scales
from depthcore.io import protect
from depthcore.training.objectives import REGISTRY
from stages.common import load_section, run_stage, stage_args


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--objective", required=True, choices=sorted(REGISTRY))


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args("Per-scale validation AbsRel of a trained model.", argv, _extra)

    def body() -> None:
        cfg = load_section("scales", ScalesConfig, args.params)
        # models_dir is read and written in place: protect the one file read from it
        checkpoint = Path(cfg.models_dir) / args.objective / "model.safetensors"
        protect(f"scales.models_dir/{args.objective}/model.safetensors", checkpoint)
        run_scales(cfg, args.objective, REGISTRY[args.objective].scales)

    run_stage(f"scales-{args.objective}", body)


if __name__ == "__main__":
    main()
