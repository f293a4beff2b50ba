"""Stage ``evaluate``: score one predictor zero-shot on the configured benchmarks.

``python -m stages.evaluate --params params.yaml --model <checkpoint | reference:constant_plane |
reference:vertical_gradient> --out <dir>`` writes ``<dir>/metrics.json``,
``<dir>/per_image.csv``, ``<dir>/panels/`` and ``<dir>/evaluate_config.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from depthcore.evaluation.run import EvaluateConfig, run_evaluation
from depthcore.models.generate import sampling_for
from depthcore.predict.predictor import load_depth_model
from stages.common import load_section, run_stage, stage_args


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="checkpoint path, or reference:constant_plane | reference:vertical_gradient",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args("Evaluate a depth predictor on the benchmarks.", argv, _extra)

    def body() -> None:
        cfg = load_section(
            "evaluate",
            EvaluateConfig,
            args.params,
            reads={"--model": args.model},
            writes={"--out": args.out},
        )
        sampling = sampling_for(cfg.decoding, cfg.seed)
        model = load_depth_model(args.model, seed=cfg.seed, sampling=sampling)
        run_evaluation(cfg, model, args.model, args.out)

    run_stage("evaluate", body)


if __name__ == "__main__":
    main()
