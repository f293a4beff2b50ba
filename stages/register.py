"""Stage ``register``: log this round's models to MLflow, rank all candidates, move ``champion``.

Outputs: ``<out_dir>/registry.json`` (ranks, new versions, the champion decision)
and ``<out_dir>/rank_table.md`` (the rank table as markdown).
"""

from __future__ import annotations

import json
from pathlib import Path

from depthcore.config import load_section
from depthcore.io import write_text_atomic
from depthcore.tracking.registry import RegisterConfig, register_round
from stages.common import run_stage, stage_args


def main(argv: list[str] | None = None) -> None:
    args = stage_args(__doc__.splitlines()[0], argv)

    def body() -> None:
        cfg = load_section("register", RegisterConfig, args.params)
        result = register_round(cfg)
        out_dir = Path(cfg.out_dir)
        write_text_atomic(out_dir / "rank_table.md", result.table_md + "\n")
        write_text_atomic(out_dir / "registry.json", json.dumps(result.to_json(), indent=2) + "\n")
        print(result.table_md)
        print(result.reason)

    run_stage("register", body)


if __name__ == "__main__":
    main()
