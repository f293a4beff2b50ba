"""Stage ``validate``: the great-expectations gate over the preprocessed shards.

``python -m stages.validate --params params.yaml`` reads the ``validate`` section, writes
``<report_dir>/validation_report.md`` and ``.json`` and exits non-zero when a check fails.
"""

from __future__ import annotations

from collections.abc import Sequence

from depthcore.data.hypersim.validate import ValidateConfig, validate
from stages.common import load_section, run_stage, stage_args


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args("Validate the preprocessed Hypersim shards.", argv)

    def body() -> None:
        cfg = load_section("validate", ValidateConfig, args.params)
        report = validate(cfg)
        print(f"validate: {len(report.results)} checks passed; report {report.markdown_path}")

    run_stage("validate", body)


if __name__ == "__main__":
    main()
