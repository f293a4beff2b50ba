"""Stage ``register``: log this round's models to MLflow, rank all candidates, move ``champion``.

Outputs: ``<out_dir>/registry.json`` (ranks, new versions, the champion decision, the
``register`` MLflow run), ``<out_dir>/rank_table.md`` (the rank table as markdown) and
``<out_dir>/comparison.md`` / ``comparison.json`` (paired bootstrap intervals of every pair
of candidates and the decision with its reason). All are artifacts of the round's
``register`` MLflow run, and the decision is written into the registered models'
descriptions (:mod:`depthcore.tracking.publish`).
``<out_dir>/headline/`` (rank, AbsRel and delta1 per benchmark of each candidate:
``dvc metrics show --md outputs/register/headline``).
"""

from __future__ import annotations

from depthcore.config import ConfigError, TrackingConfig
from depthcore.tracking.headline import round_headline, write_headline
from depthcore.tracking.registry import RegisterConfig, register_round
from depthcore.training.objectives import REGISTRY
from stages.common import load_section, run_stage, stage_args


def main(argv: list[str] | None = None) -> None:
    args = stage_args(__doc__.splitlines()[0], argv)

    def body() -> None:
        cfg = load_section("register", RegisterConfig, args.params)
        unknown = sorted(set(cfg.objectives) - set(REGISTRY))
        if unknown:
            raise ConfigError(
                f"{args.params}: register.objectives: {unknown} not registered "
                f"(depthcore.training.objectives: {sorted(REGISTRY)})"
            )
        tracking = load_section("tracking", TrackingConfig, args.params)
        result = register_round(cfg, tracking=tracking)
        write_headline(cfg.out_dir, round_headline(cfg, result))
        print(result.table_md)
        print(result.reason)

    run_stage("register", body)


if __name__ == "__main__":
    main()
