"""Stage ``report``: the results page, generated from the pipeline's outputs.

``python -m stages.report --params params.yaml [--page docs/results.md]`` writes ``report.out``
(rank table, champion decision, the DepthART vs VAR-TF paired bootstrap intervals, the
per-scale curves) and, with ``--page``, replaces that page's text between
``<!-- results:begin -->`` and ``<!-- results:end -->`` with it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from depthcore.evaluation.report import ReportConfig, replace_between_markers, results_section
from depthcore.io import write_text_atomic
from stages.common import load_section, run_stage, stage_args


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page", type=Path, default=None, help="markdown page to update in place")


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args(__doc__.splitlines()[0], argv, _extra)

    def body() -> None:
        cfg = load_section("report", ReportConfig, args.params)
        section = results_section(cfg.register_dir, cfg.models_dir, cfg.objectives)
        write_text_atomic(Path(cfg.out), section)
        if args.page is not None:
            text = replace_between_markers(args.page.read_text(), section, str(args.page))
            write_text_atomic(args.page, text)
        print(section)

    run_stage("report", body)


if __name__ == "__main__":
    main()
