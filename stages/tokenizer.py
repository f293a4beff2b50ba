"""Stage ``tokenizer``: import the official VQ-VAE or train the tiny one, then freeze it.

``python -m stages.tokenizer --params params.yaml`` writes
``<tokenizer.out_dir>/vae.safetensors`` and ``<tokenizer.out_dir>/tokenizer_train.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

from depthcore.training.tokenizer import TokenizerConfig, run_tokenizer
from stages.common import load_section, run_stage, stage_args


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args("Train (or import) the frozen VQ-VAE tokenizer.", argv)

    def body() -> None:
        run_tokenizer(load_section("tokenizer", TokenizerConfig, args.params))

    run_stage("tokenizer", body)


if __name__ == "__main__":
    main()
