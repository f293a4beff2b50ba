"""Publishing a registration round: reports, the ``register`` run, promotion, descriptions.

Split from :mod:`depthcore.tracking.registry` (which decides) so this module only
writes what the UI shows: the files under ``outputs/register``, the round's MLflow
run, the product model's champion version and alias, version descriptions and the
curated tags (:mod:`depthcore.tracking.describe`). mlflow is imported by the caller's
client only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from depthcore.evaluation.comparison import DiffCI
from depthcore.io import file_sha256, write_text_atomic
from depthcore.run_logger import git_commit
from depthcore.tracking import describe, runs
from depthcore.tracking.describe import Decision, Standing
from depthcore.tracking.rounds import NewModel, RegisterConfig, RoundResult

if TYPE_CHECKING:
    from mlflow import MlflowClient

TAG_OBJECTIVE = "objective"
TAG_ROLE = "role"  # registered-model tag: "candidate" (one per objective) or "product"
TAG_SOURCE = "source"  # product-version tag: the candidate version it is a copy of
REFERENCE_PREFIX = "reference:"


def version_label(name: str, version: str | int) -> str:
    return f"{name}/v{version}"


def split_label(label: str) -> tuple[str, str]:
    """``("depthart-tiny", "3")`` from ``depthart-tiny/v3``."""
    name, version = label.rsplit("/v", 1)
    return name, version


def ensure_registered_model(
    client: MlflowClient, name: str, tags: dict[str, str], text: str
) -> None:
    """Create registered model ``name`` with ``tags`` and description ``text`` unless it exists."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, tags=tags, description=text)


def promote(client: MlflowClient, cfg: RegisterConfig, winner: str, text: str) -> str:
    """Copy the winning candidate version into the product model and point the alias at it."""
    src_name, src_version = split_label(winner)
    mv = client.copy_model_version(f"models:/{src_name}/{src_version}", cfg.registered_model)
    version = str(mv.version)
    client.set_model_version_tag(cfg.registered_model, version, TAG_SOURCE, winner)
    src = client.get_model_version(src_name, src_version)
    client.set_model_version_tag(
        cfg.registered_model, version, TAG_OBJECTIVE, src.tags.get(TAG_OBJECTIVE, "")
    )
    client.update_model_version(cfg.registered_model, version, description=text)
    client.set_registered_model_alias(cfg.registered_model, cfg.alias, version)
    return version


def publish_round(
    client: MlflowClient,
    cfg: RegisterConfig,
    result: RoundResult,
    decision: Decision,
    new_models: list[NewModel],
    standings: Mapping[str, Standing],
    vs_champion: Mapping[str, Mapping[str, Mapping[str, DiffCI]]],
    root: Path,
    experiment: str,
) -> str:
    """Reports to files and the ``register`` run, promotion, descriptions and curated tags.

    Sets ``result.register_run_id`` / ``register_experiment_id`` and returns the run id.
    """
    out_dir = root / cfg.out_dir
    texts = {
        "rank_table.md": result.table_md + "\n",
        "comparison.md": result.comparison_md,
        "comparison.json": json.dumps(result.comparison, indent=2, sort_keys=True) + "\n",
    }
    for filename, text in texts.items():
        write_text_atomic(out_dir / filename, text)
    files = {name: out_dir / name for name in texts}
    champion = standings.get(result.champion_after) if result.champion_after else None
    judged_against = standings.get(result.champion_before) if result.champion_before else None
    verdict = "promoted" if decision.promoted else "kept the champion"
    note = f"**Champion: {result.champion_after}** ({verdict}). {decision.reason}\n\n"
    register_run = runs.log_register_run(
        client, experiment, note_md=note + result.table_md, files=files,
        params={"alignment": cfg.alignment, "rank_metrics": ",".join(cfg.rank_metrics)},
    )  # fmt: skip
    result.register_run_id = register_run
    result.register_experiment_id = client.get_run(register_run).info.experiment_id
    write_text_atomic(out_dir / "registry.json", json.dumps(result.to_json(), indent=2) + "\n")
    client.log_artifact(register_run, str(out_dir / "registry.json"))
    register_link = runs.run_link(client, register_run)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    ensure_registered_model(
        client, cfg.registered_model, {TAG_ROLE: "product"}, "(written by the register stage)"
    )
    if decision.winner is not None:
        text = describe.version_description(
            standings[decision.winner], judged_against, decision, date=date,
            run_link=register_link, vs_champion=vs_champion.get(decision.winner),
            level=cfg.ci_level,
        )  # fmt: skip
        promote(client, cfg, decision.winner, text)
    client.update_registered_model(
        cfg.registered_model,
        describe.product_description(
            cfg.registered_model, champion, decision, date=date, register_run_link=register_link
        ),
    )
    lock = root / "dvc.lock"
    for model in new_models:
        label = result.new_versions[model.objective]
        name, version = split_label(label)
        run = client.get_run(model.run_id)
        text = describe.version_description(
            standings[label], judged_against, decision, date=date,
            run_link=runs.run_link(client, model.run_id), vs_champion=vs_champion.get(label),
            level=cfg.ci_level,
        )  # fmt: skip
        client.update_model_version(name, version, description=text)
        tags = describe.curated_tags(
            standings[label],
            checkpoint_sha256=file_sha256(model.checkpoint),
            git_commit=run.data.tags.get("git_commit") or git_commit(root),
            params_hash=describe.short_hash(run.data.params),
            data_version=describe.data_version(lock, f"train@{model.objective}"),
            champion=label == result.champion_after,
        )
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
    for label, standing in standings.items():  # older versions: rank and standing only
        if not label.startswith(REFERENCE_PREFIX) and label not in result.new_versions.values():
            name, version = split_label(label)
            client.set_model_version_tag(name, version, "rank", f"{standing.rank:.3f}")
            client.set_model_version_tag(name, version, "rank_of", str(standing.num_candidates))
            client.set_model_version_tag(
                name, version, "champion", "yes" if label == result.champion_after else "no"
            )
    return register_run
