"""Stage ``tokenizer_eval``: the frozen tokenizer's depth reconstruction ceiling.

``python -m stages.tokenizer_eval --params params.yaml`` writes
``<tokenizer.out_dir>/tokenizer_metrics.json``: the ``tokenizer`` section's tokenizer
scored on the frames of the ``tokenizer_eval`` section.
"""

from __future__ import annotations

from collections.abc import Sequence

from depthcore.evaluation.ceiling import TokenizerEvalConfig, run_tokenizer_eval
from depthcore.training.tokenizer import TokenizerConfig
from stages.common import load_section, run_stage, stage_args


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args("Score the tokenizer's depth reconstruction (the ceiling).", argv)

    def body() -> None:
        cfg = load_section("tokenizer", TokenizerConfig, args.params)
        run_tokenizer_eval(cfg, load_section("tokenizer_eval", TokenizerEvalConfig, args.params))

    run_stage("tokenizer_eval", body)


if __name__ == "__main__":
    main()
