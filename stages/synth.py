"""Stage ``synth``: render the embedded default training source in the Hypersim layout.

``python -m stages.synth --params params.yaml`` reads the ``synth`` section and
writes ``<synth.out_dir>/`` (``ai_VVV_NNN.zip`` per scene plus the dataset-wide
CSVs); the ``download`` stage then fetches from it via ``file://<synth.out_dir>``
exactly as it would from the real Hypersim bucket.
"""

from __future__ import annotations

from collections.abc import Sequence

from depthcore.io import atomic_path
from depthcore.synth.hypersim import SynthConfig, generate_hypersim
from stages.common import load_section, run_stage, stage_args


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args(__doc__.splitlines()[0], argv)

    def body() -> None:
        cfg = load_section("synth", SynthConfig, args.params)
        with atomic_path(cfg.out_dir) as tmp:
            zips = generate_hypersim(tmp, cfg)
        print(f"synth: {len(zips)} scenes -> {cfg.out_dir}")

    run_stage("synth", body)


if __name__ == "__main__":
    main()
