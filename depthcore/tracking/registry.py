"""The ranked model registry: register trained models, rank every candidate, promote a champion.

Names say what they are. Each training objective has its own registered model,
``<objective>-<size>`` (``depthart-tiny``, ``var-tf-tiny``), whose versions are the
candidates; the product model ``depthart`` holds only champions, one version per
promotion (a copy of the winning candidate version), and its ``champion`` alias is what
``models:/depthart@champion`` serves. So "depthart v2 | var_tf" never appears: a
teacher-forcing champion shows as ``var-tf-tiny/v1`` on the product page, whose
description says why it is champion (:mod:`depthcore.tracking.describe`).

Ranking is relative (the DepthART paper's rank metric), and only evidence moves the
champion (:mod:`depthcore.evaluation.champion`): each round ranks this round's models and
the sitting champion among themselves, a difference inside its paired bootstrap interval
counting as a tie; every version registered before (from the metrics and per-image table
stored in its run) and the reference predictors are shown beside them, each ranked as if
added alone. The alias moves only when this round's best has a strictly lower rank than
the champion and a significant AbsRel win on at least half of the benchmarks; a tie keeps
the champion, a tie between new models is broken by the bootstrap or not at all, and the
first champion must beat the best content-free reference. Each round is also an MLflow
run (``register``) holding the rank table and the decision.

MLflow is imported inside functions only: ``import depthcore`` stays free of it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from depthcore.config import TrackingConfig
from depthcore.errors import DataError, DepthcoreError
from depthcore.evaluation.champion import (
    PROMOTION_METRIC,
    PairCIs,
    beside_ranks,
    decide_promotion,
    evidence_ranks,
    pair_cis,
)
from depthcore.evaluation.comparison import (
    PerImage,
    compare,
    compare_all,
    comparison_document,
    read_per_image,
)
from depthcore.evaluation.ranking import (
    Candidate,
    NestedMetrics,
    check_metrics,
    rank_axes,
    rank_markdown,
    read_metrics,
)
from depthcore.io import file_sha256
from depthcore.run_logger import RUN_RECORD, read_run_id, resolve_tracking_uri
from depthcore.tracking import runs
from depthcore.tracking.describe import Decision, Standing
from depthcore.tracking.glossary import headline_metrics
from depthcore.tracking.provenance import attach_provenance
from depthcore.tracking.publish import (
    REFERENCE_PREFIX,
    TAG_OBJECTIVE,
    TAG_ROLE,
    TAG_SOURCE,
    ensure_registered_model,
    publish_round,
    split_label,
    version_label,
)
from depthcore.tracking.pyfunc import example_input, log_pyfunc_model
from depthcore.tracking.rounds import NewModel, RegisterConfig, RoundResult

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

TAG_SHA256 = "checkpoint_sha256"
PER_IMAGE_ARTIFACT = "eval/per_image.csv"  # in the training run: a later round's champion

# re-exported: the records live in rounds (params.yaml names register's config as
# depthcore.tracking.registry:RegisterConfig)
__all__ = ["NewModel", "RegisterConfig", "RoundResult"]


# Logs the model into the *active* MLflow run under the given name; returns its model URI.
LogModel = Callable[[NewModel, str], str]


def connect(uri: str, *, timeout_s: int = 10, max_retries: int = 1) -> MlflowClient:
    """Point MLflow at ``uri`` and check that it answers, failing fast with the URI named.

    MLflow's defaults retry an unreachable server for minutes; a pipeline stage should
    say within seconds which server it could not reach. The limits are set through
    MLflow's own environment variables (unless the user set them) because its HTTP
    layer reads them per request.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout_s))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(max_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.search_registered_models(max_results=1)
    except (MlflowException, OSError) as exc:
        raise DepthcoreError(f"MLflow tracking server {uri} is not reachable: {exc}") from exc
    # The fluent API (start_run, log_model, register_model) follows the global URIs:
    # point them at the server only once it is known to answer.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return client


def candidate_model_name(objective: str, size: str) -> str:
    """``depthart-tiny``, ``var-tf-tiny``: what a registered candidate model holds."""
    return f"{objective.replace('_', '-')}-{size}"


def registered_candidates(client: MlflowClient) -> list[Candidate]:
    """Every version of every candidate model, with the metrics stored in its run."""
    candidates = []
    for rm in client.search_registered_models():
        if rm.tags.get(TAG_ROLE) != "candidate":
            continue
        for mv in client.search_model_versions(f"name='{rm.name}'"):
            raw = runs.load_version_metrics(client, mv.run_id, rm.name, str(mv.version))
            if raw is None:
                log.warning("%s v%s has no stored metrics; not ranked", rm.name, mv.version)
                continue
            candidates.append(
                Candidate(
                    name=version_label(rm.name, mv.version),
                    metrics=check_metrics(raw, f"{rm.name} version {mv.version} metrics"),
                    version=str(mv.version),
                    objective=mv.tags.get(TAG_OBJECTIVE),
                )
            )
    return candidates


def find_version(client: MlflowClient, name: str, sha256: str) -> str | None:
    """The version of ``name`` already holding the checkpoint with this hash, if any."""
    for mv in client.search_model_versions(f"name='{name}'"):
        if mv.tags.get(TAG_SHA256) == sha256:
            return str(mv.version)
    return None


def register_new(client: MlflowClient, model: NewModel, log_model: LogModel) -> str:
    """Log ``model`` into its training run and register it; returns its version label.

    Re-running the stage on the same checkpoint (e.g. after an evaluation change)
    refreshes that version's metrics instead of registering a duplicate candidate.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(model.run_id)
    except MlflowException as exc:
        raise DepthcoreError(
            f"training run {model.run_id} of {model.checkpoint} is not in the tracking "
            f"store {client.tracking_uri}: {exc}"
        ) from exc
    name = candidate_model_name(model.objective, run.data.params.get("model", "model"))
    ensure_registered_model(
        client, name, {TAG_ROLE: "candidate", TAG_OBJECTIVE: model.objective},
        f"Every `{model.objective}` model of this size, one version per trained checkpoint. "
        "Each version's description gives its rank among all candidates and whether it was "
        "promoted to the served `depthart@champion`.",
    )  # fmt: skip
    sha = file_sha256(model.checkpoint)
    version = find_version(client, name, sha)
    if version is None:
        with mlflow.start_run(run_id=model.run_id):
            model_uri = log_model(model, name)
        mv = client.create_model_version(
            name, model_uri, run_id=model.run_id, tags={TAG_OBJECTIVE: model.objective,
            TAG_SHA256: sha},
        )  # fmt: skip
        version = str(mv.version)
        log.info("registered %s version %s from run %s", name, version, model.run_id)
    else:
        log.info("%s is already %s version %s", model.checkpoint, name, version)
    runs.store_version_metrics(client, model.run_id, name, version, model.metrics)
    client.log_text(model.run_id, model.per_image.read_text(), PER_IMAGE_ARTIFACT)
    return version_label(name, version)


def current_champion(client: MlflowClient, name: str, alias: str) -> str | None:
    """The candidate label the product's alias points at, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
            return None
        raise
    return mv.tags.get(TAG_SOURCE) or version_label(name, mv.version)


def version_per_image(client: MlflowClient, label: str, alignment: str) -> PerImage:
    """The per-image metrics a registered version's run logged (empty when it has none)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name, version = split_label(label)
    run_id = client.get_model_version(name, version).run_id
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=PER_IMAGE_ARTIFACT, tracking_uri=client.tracking_uri
        )
    except (MlflowException, OSError) as exc:
        log.warning("%s: no %s in run %s (%s)", label, PER_IMAGE_ARTIFACT, run_id, exc)
        return {}
    return read_per_image(local, alignment)


def _compare_round(
    client: MlflowClient,
    cfg: RegisterConfig,
    per_image: Mapping[str, Path],
    pool: list[str],
    past: list[str],
) -> tuple[list[dict[str, Any]], PairCIs]:
    """Paired bootstrap of every pair of this round's candidates, the champion and the
    references (the comparison document), plus each past version against the pool (for its
    rank beside it); returns the document's pairs and every interval as :data:`PairCIs`."""
    tables = {label: read_per_image(path, cfg.alignment) for label, path in per_image.items()}
    for label in [*pool, *past]:
        if label not in tables:
            tables[label] = version_per_image(client, label, cfg.alignment)
    boot = _boot(cfg)
    shown = {k: v for k, v in tables.items() if v and k not in past}
    pairs = compare_all(shown, cfg.rank_metrics, **boot)
    beside = [
        {"a": old, "b": label, "benchmarks": compare(tables[old], tables[label],
                                                      cfg.rank_metrics, **boot)}
        for old in past if tables[old] for label in pool if tables[label]
    ]  # fmt: skip
    return pairs, pair_cis(pairs + beside)


def _boot(cfg: RegisterConfig) -> dict[str, Any]:
    return {"resamples": cfg.bootstrap_resamples, "level": cfg.ci_level, "seed": cfg.bootstrap_seed}


def run_round(
    client: MlflowClient,
    cfg: RegisterConfig,
    new_models: list[NewModel],
    references: Mapping[str, tuple[NestedMetrics, Path]],
    log_model: LogModel,
    root: str | Path = ".",
    experiment: str = TrackingConfig().experiment,
) -> RoundResult:
    """Register, rank, compare, log the evidence, maybe promote; then describe and report.

    Writes ``rank_table.md``, ``registry.json``, ``comparison.md`` and ``comparison.json``
    to ``<root>/<out_dir>`` and logs them as artifacts of this round's ``register`` run
    (the reference and register runs go to ``experiment``).
    """
    root = Path(root)
    new_labels = {m.objective: register_new(client, m, log_model) for m in new_models}
    candidates = registered_candidates(client)
    ref_runs = {ref: runs.reference_run(client, experiment, ref) for ref in references}
    ref_labels = [f"{REFERENCE_PREFIX}{ref}" for ref in references]
    candidates += [
        Candidate(name=label, metrics=metrics, objective="reference")
        for label, (metrics, _) in zip(ref_labels, references.values(), strict=True)
    ]
    by_name = {c.name: c for c in candidates}
    before = current_champion(client, cfg.registered_model, cfg.alias)
    labels = list(new_labels.values())
    # the ranked pool: this round's candidates and the sitting champion (champion.py)
    pool = list(dict.fromkeys(labels + ([before] if before in by_name else [])))
    others = [c.name for c in candidates if c.name not in pool]
    per_image = {new_labels[m.objective]: m.per_image for m in new_models}
    per_image |= {f"{REFERENCE_PREFIX}{ref}": path for ref, (_, path) in references.items()}
    past = [name for name in others if name not in per_image]
    pairs, cis = _compare_round(client, cfg, per_image, pool, past)
    benches, metrics = rank_axes([by_name[n] for n in pool], cfg.alignment, cfg.rank_metrics)
    ranks = evidence_ranks(pool, benches, metrics, cis)
    ranks |= beside_ranks(pool, others, benches, metrics, cis)
    standings = {
        c.name: Standing(
            c.name,
            c.objective or "-",
            ranks[c.name],
            len(pool) + (c.name not in pool),
            headline_metrics(c.metrics, cfg.alignment),
        )
        for c in candidates
    }
    rule = decide_promotion(ranks, labels, before, cis, ref_labels)
    vs_champion = {
        label: {b: {PROMOTION_METRIC: per[PROMOTION_METRIC]}
                for b, per in cis.get((label, before), {}).items() if PROMOTION_METRIC in per}
        for label in labels if before and label != before
    }  # fmt: skip
    decision = Decision(rule.promote, rule.reason, rule.winner, rule.challenger)
    log.info("champion: %s", rule.reason)
    after = rule.winner or before
    eval_root, model_root = root / cfg.eval_dir, root / cfg.models_dir
    for m in new_models:
        runs.log_evidence(
            client, m.run_id, m.metrics, cfg.alignment, rank=ranks[new_labels[m.objective]],
            eval_dir=eval_root / m.objective, model_dir=model_root / m.objective,
        )  # fmt: skip
    for ref, (metrics, _) in references.items():
        runs.log_evidence(
            client, ref_runs[ref], metrics, cfg.alignment,
            rank=ranks[f"{REFERENCE_PREFIX}{ref}"], eval_dir=eval_root / f"reference_{ref}",
        )  # fmt: skip
    comparison_md, comparison = comparison_document(
        pairs, alignment=cfg.alignment, decision=rule.to_json(), **_boot(cfg)
    )
    result = RoundResult(
        registered_model=cfg.registered_model,
        tracking_uri=client.tracking_uri,
        ranks=dict(sorted(ranks.items(), key=lambda kv: kv[1])),
        new_versions=dict(new_labels),
        champion_before=before,
        champion_after=after,
        promoted=rule.promote,
        reason=rule.reason,
        decision=rule.to_json(),
        ranked=pool,
        table_md=rank_markdown(
            candidates, ranks, cfg.alignment, cfg.rank_metrics, after, ranked=pool
        ),
        comparison_md=comparison_md,
        comparison=comparison,
    )
    publish_round(
        client, cfg, result, decision, new_models, standings, vs_champion, root, experiment
    )
    attach_provenance(client, cfg, result, new_models, ref_runs, root)  # lineage, model card
    return result


def collect_round(
    cfg: RegisterConfig, root: str | Path = "."
) -> tuple[list[NewModel], dict[str, tuple[NestedMetrics, Path]]]:
    """This round's checkpoints, run records, metrics and per-image tables from the outputs."""
    root = Path(root)
    new_models = []
    for objective in cfg.objectives:
        model_dir = root / cfg.models_dir / objective
        checkpoint = model_dir / "model.safetensors"
        if not checkpoint.is_file():
            raise DataError(f"{checkpoint}: checkpoint not found (run the train stage first)")
        eval_dir = root / cfg.eval_dir / objective
        run_id = read_run_id(model_dir / RUN_RECORD)
        metrics = read_metrics(eval_dir / "metrics.json")
        per_image = _existing(eval_dir / "per_image.csv")
        new_models.append(NewModel(objective, checkpoint, run_id, metrics, per_image))
    references = {}
    for ref in cfg.references:
        eval_dir = root / cfg.eval_dir / f"reference_{ref}"
        references[ref] = (
            read_metrics(eval_dir / "metrics.json"),
            _existing(eval_dir / "per_image.csv"),
        )
    return new_models, references


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: per-image metrics not found (run the evaluate stage first)")
    return path


def register_round(
    cfg: RegisterConfig,
    root: str | Path = ".",
    log_model: LogModel | None = None,
    tracking: TrackingConfig | None = None,
) -> RoundResult:
    """The register stage: connect, register this round's models, rank, promote, report,
    in the MLflow store and experiment of ``tracking`` (the params' ``tracking`` section)."""
    tracking = tracking or TrackingConfig()
    new_models, references = collect_round(cfg, root)
    uri = resolve_tracking_uri(tracking.uri)
    client = connect(uri, timeout_s=cfg.http_timeout_s, max_retries=cfg.http_max_retries)
    log_fn = log_model or log_depthcore_pyfunc
    result = run_round(client, cfg, new_models, references, log_fn, root, tracking.experiment)
    result.tracking_uri = uri
    return result


def log_depthcore_pyfunc(model: NewModel, name: str) -> str:
    """Log a trained checkpoint as the depthcore pyfunc, named after what it is."""
    return log_pyfunc_model(model.checkpoint, name, input_example=example_input()).model_uri
