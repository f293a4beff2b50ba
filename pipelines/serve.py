"""``python -m pipelines.serve``: serve the ``retrain`` flow as a cron-scheduled Prefect deployment.

The process registers the deployment (name, cron and timezone from the
``schedule`` section of params.yaml) with the Prefect API in ``PREFECT_API_URL``
and then executes its scheduled and manually triggered runs until stopped.
Cron schedules only fire on a real server (``prefect server start``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from prefect.schedules import Cron

from depthcore.config import load_section
from pipelines.flows import ScheduleConfig, retrain


def serve(repo: Path, params: Path, cfg: ScheduleConfig) -> None:
    """Register the deployment and serve it (blocks until interrupted)."""
    retrain.serve(
        name=cfg.deployment,
        schedules=[Cron(cfg.cron, timezone=cfg.timezone)],
        parameters={"repo": str(repo), "params": str(params)},
        description=(
            "Retrain, evaluate, rank and register DepthART models. Optional parameters: "
            'overrides ({"train.steps": 50}) and objectives (["depthart"]), checked before '
            "anything runs; in a git checkout each run is a DVC experiment (dvc exp show)."
        ),
        tags=["depthart", "retrain"],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository to build in")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    params = args.params if args.params.is_absolute() else repo / args.params
    cfg = load_section("schedule", ScheduleConfig, params)
    serve(repo, params.relative_to(repo) if params.is_relative_to(repo) else params, cfg)


if __name__ == "__main__":
    main()
