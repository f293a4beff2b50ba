"""Stage ``list_source``: list what the download source holds (sizes, ETags, mtimes), cheaply.

``python -m stages.list_source --params params.yaml --out data/listing/hypersim.json``
reads the ``download`` section and writes the listing that ``download`` depends on.
dvc.yaml marks this stage ``always_changed``: it runs on every ``dvc repro``, and
``download`` (with everything after it) reruns only when the listing differs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from depthcore.data.hypersim.download import DownloadConfig
from depthcore.data.hypersim.listing import write_listing
from stages.common import load_section, run_stage, stage_args


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="listing JSON to write")


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args(__doc__.splitlines()[0], argv, _extra)

    def body() -> None:
        cfg = load_section("download", DownloadConfig, args.params, writes={"--out": args.out})
        listing, changed = write_listing(cfg, args.out)
        state = "changed" if changed else "unchanged"
        print(f"list_source: {len(listing['files'])} files at {cfg.source}, {state} -> {args.out}")

    run_stage("list_source", body)


if __name__ == "__main__":
    main()
