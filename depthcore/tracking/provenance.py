"""Attach lineage and a model card to each version a register round created.

Why one step after publishing: the round's descriptions, ranks and decision exist by
then, and the card must only restate recorded facts. For each new candidate version
this logs the dvc.lock hashes of its training and evaluation inputs as MLflow datasets
of its training run (:mod:`depthcore.tracking.lineage`), gathers the card's facts from
the run, the checkpoint's meta and the evaluation records, logs ``model_card.md`` and
``model_card_facts.json`` there, and links both from the version's description (and
from the product version that copies it, when it was promoted).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError, safe_open

from depthcore.errors import DataError
from depthcore.evaluation.comparison import paired_bootstrap_ci, read_per_image
from depthcore.models.checkpoint import META_KEY
from depthcore.tracking.lineage import (
    TAG_REGISTER_RUN,
    TAG_SOURCE,
    data_hash,
    lineage_markdown,
    log_reference_inputs,
    log_round_inputs,
    params_hash,
    run_data,
)
from depthcore.tracking.model_card import (
    CARD_ARTIFACT,
    FACTS_ARTIFACT,
    BenchmarkFacts,
    CardFacts,
    Interval,
    model_card,
)
from depthcore.tracking.rounds import NewModel, RegisterConfig, RoundResult

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

#: Run metrics a card reports as latency and memory when a measurement recorded them.
PERFORMANCE_METRICS = ("predict_latency_ms", "predict_peak_memory_mb")


def checkpoint_meta(path: Path) -> dict[str, Any]:
    """The free ``meta`` of a safetensors checkpoint (header only); {} when it has none."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        log.warning("%s: no readable safetensors header (%s): card says 'not recorded'", path, exc)
        return {}
    try:
        return dict(json.loads(metadata.get(META_KEY, "{}")))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: metadata '{META_KEY}' is not a JSON object: {exc}") from exc


def benchmark_facts(model: NewModel, cfg: RegisterConfig) -> tuple[BenchmarkFacts, ...]:
    """Per benchmark: the recorded means (metrics.json) and bootstrap intervals of the mean
    over its images (per_image.csv; the paired bootstrap against zero, the round's seed)."""
    rows = read_per_image(model.per_image, cfg.alignment)
    out = []
    for bench, per_alignment in sorted(model.metrics.items()):
        recorded = per_alignment.get(cfg.alignment, {})
        images = [v for (b, _), v in rows.items() if b == bench]
        intervals = []
        for metric in cfg.rank_metrics:
            values = [img[metric] for img in images if metric in img]
            if metric not in recorded or not values:
                continue
            ci = paired_bootstrap_ci(
                values, np.zeros(len(values)), resamples=cfg.bootstrap_resamples,
                level=cfg.ci_level, seed=cfg.bootstrap_seed,
            )  # fmt: skip
            intervals.append(Interval(metric, float(recorded[metric]), ci.lo, ci.hi))
        num = int(recorded.get("num_images", len(images)))
        out.append(BenchmarkFacts(bench, num, tuple(intervals)))
    return tuple(out)


def _decoding(eval_dir: Path) -> str:
    path = eval_dir / "evaluate_config.json"
    if not path.is_file():
        return "not recorded"
    try:
        return str(json.loads(path.read_text())["evaluate"]["decoding"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: no evaluate.decoding ({exc})") from exc


def verdict(label: str, result: RoundResult) -> str:
    """The round's decision as it concerns ``label``."""
    if label == result.champion_after:
        head = "Promoted to champion." if result.promoted else "Champion (kept)."
    else:
        head = f"Not champion (champion: {result.champion_after})."
    return f"{head} {result.reason}"


def gather_facts(
    client: MlflowClient, cfg: RegisterConfig, result: RoundResult, model: NewModel, label: str
) -> CardFacts:
    """The card's facts for one new version, all read from records."""
    run = client.get_run(model.run_id)
    params = dict(run.data.params)
    meta = checkpoint_meta(model.checkpoint)
    frames = params.get("train_frames", "")
    image_size = meta.get("image_size")
    return CardFacts(
        label=label,
        objective=model.objective,
        model=params.get("model", "not recorded"),
        space=str(meta.get("space") or params.get("space") or "not recorded"),
        image_size=None if image_size is None else int(image_size),
        trained_on=meta.get("trained_on"),
        data=run_data(client, model.run_id),
        train_frames=int(frames) if frames.isdigit() else None,
        git_commit=run.data.tags.get("git_commit", "unknown"),
        params_hash=params_hash(params),
        params=params,
        alignment=cfg.alignment,
        rank_metrics=tuple(cfg.rank_metrics),
        ci_level=cfg.ci_level,
        resamples=cfg.bootstrap_resamples,
        decoding=_decoding(model.per_image.parent),
        benchmarks=benchmark_facts(model, cfg),
        rank=result.ranks[label],
        num_candidates=len(result.ranks),
        verdict=verdict(label, result),
        performance={k: v for k, v in run.data.metrics.items() if k in PERFORMANCE_METRICS},
    )


def card_link(experiment_id: str, run_id: str) -> str:
    """A relative link the MLflow UI opens on the run's card artifact."""
    return (
        f"[{CARD_ARTIFACT}](#/experiments/{experiment_id}/runs/{run_id}/artifacts/{CARD_ARTIFACT})"
    )


def _link_version(client: MlflowClient, name: str, version: str, text: str, tags: dict) -> None:
    description = client.get_model_version(name, version).description or ""
    client.update_model_version(name, version, description=f"{description}\n\n{text}".strip())
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def attach_provenance(
    client: MlflowClient,
    cfg: RegisterConfig,
    result: RoundResult,
    new_models: list[NewModel],
    ref_runs: Mapping[str, str],
    root: str | Path = ".",
) -> dict[str, CardFacts]:
    """Log lineage and card for each of this round's versions; returns their facts."""
    lock = Path(root) / "dvc.lock"
    for ref, run_id in ref_runs.items():
        log_reference_inputs(client, run_id, lock, ref)
    product = _product_version(client, cfg)
    facts_by_label = {}
    for model in new_models:
        label = result.new_versions[model.objective]
        log_round_inputs(client, model.run_id, lock, model.objective)
        facts = gather_facts(client, cfg, result, model, label)
        client.log_text(model.run_id, model_card(facts), CARD_ARTIFACT)
        client.log_text(model.run_id, json.dumps(facts.to_json(), indent=1), FACTS_ARTIFACT)
        exp_id = client.get_run(model.run_id).info.experiment_id
        text = (
            lineage_markdown(facts.data, label, facts.git_commit, facts.params_hash)
            + f"\n\nModel card: {card_link(exp_id, model.run_id)}"
        )
        tags = {TAG_REGISTER_RUN: result.register_run_id}
        name, _, version = label.rpartition("/v")
        _link_version(client, name, version, text, tags)
        if result.promoted and product is not None and product.tags.get(TAG_SOURCE) == label:
            # a copy carries no tags of its source: give it the data version too
            tags = {**tags, "data_version": data_hash(facts.data)}
            _link_version(client, product.name, str(product.version), text, tags)
        facts_by_label[label] = facts
    return facts_by_label


def _product_version(client: MlflowClient, cfg: RegisterConfig) -> Any:
    """The product model's version under the alias, or None before the first champion."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(cfg.registered_model, cfg.alias)
    except MlflowException as exc:
        log.info("no %s@%s yet (%s)", cfg.registered_model, cfg.alias, exc)
        return None
