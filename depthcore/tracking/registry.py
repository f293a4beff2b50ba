"""The ranked model registry: register trained models, rank every candidate, promote a champion.

One registered model name (``depthart``) holds every trained model as a version; the
training objective is a tag, not a separate name, so that the ``champion`` alias
always points at the single best model whatever objective produced it. Ranking is
relative (the DepthART paper's rank metric), so each round recomputes the ranks of
*all* candidates: this round's models, every version registered before (from the
metrics stored in its tags) and the reference predictors. Every pair of this round's
candidates (and the champion) is compared image by image with a paired bootstrap
(:mod:`depthcore.evaluation.comparison`). The alias moves only on a real win
(:func:`depthcore.evaluation.ranking.decide_promotion`: strictly better rank AND a
significant AbsRel improvement on at least half of the benchmarks), so neither a worse
retrain nor noise demotes a good model. The decision is recorded as a JSON tag
(``promotion_decision``) on the challenger version and on the registered model.

MLflow is imported inside functions only: ``import depthcore`` stays free of it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from depthcore.config import frozen, param
from depthcore.errors import DataError, DepthcoreError
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
    PromotionDecision,
    check_metrics,
    compute_ranks,
    decide_promotion,
    flatten_metrics,
    rank_markdown,
    read_metrics,
)
from depthcore.io import file_sha256, write_text_atomic
from depthcore.tracking.logger import RUN_RECORD, read_run_id, resolve_tracking_uri
from depthcore.tracking.pyfunc import log_pyfunc_model

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

TAG_OBJECTIVE = "objective"
TAG_SHA256 = "checkpoint_sha256"
TAG_METRICS = "eval_metrics_json"
TAG_RANK = "rank"
TAG_CANDIDATES = "rank_candidates"
TAG_DECISION = "promotion_decision"
PER_IMAGE_ARTIFACT = "eval/per_image.csv"
REFERENCE_PREFIX = "reference:"


@frozen
class RegisterConfig:
    """The ``register`` section of params.yaml."""

    registered_model: str = "depthart"
    alias: str = "champion"
    objectives: tuple[str, ...] = ("depthart", "var_tf")
    references: tuple[str, ...] = ("constant_plane", "vertical_gradient")
    models_dir: str = "models"
    eval_dir: str = "outputs/eval"
    out_dir: str = "outputs/register"
    # the alignment whose metrics are ranked and shown ("lsq" or "median")
    alignment: str = "lsq"
    # the metrics ranked on every benchmark (the DepthART table: AbsRel and delta1)
    rank_metrics: tuple[str, ...] = ("abs_rel", "delta1")
    # MLFLOW_TRACKING_URI overrides this (same rule as the train stage)
    tracking_uri: str = "sqlite:///mlflow.db"
    # seconds per HTTP request and retries against a remote tracking server
    http_timeout_s: int = param(10, gt=0)
    http_max_retries: int = param(1, ge=0)
    # paired bootstrap of the per-image metrics (comparison.md and the champion rule)
    ci_level: float = param(0.95, gt=0, lt=1)
    bootstrap_resamples: int = param(2000, gt=0)
    bootstrap_seed: int = 0


@dataclass(frozen=True)
class NewModel:
    """A model trained in this round, ready to be registered."""

    objective: str
    checkpoint: Path
    run_id: str
    metrics: NestedMetrics
    per_image: Path


@dataclass
class RoundResult:
    """What a registration round did; serialised to registry.json."""

    registered_model: str
    tracking_uri: str
    ranks: dict[str, float]
    new_versions: dict[str, str]
    champion_before: str | None
    champion_after: str | None
    promoted: bool
    reason: str
    decision: dict[str, Any] = field(default_factory=dict)
    table_md: str = field(repr=False, default="")
    comparison_md: str = field(repr=False, default="")
    comparison: dict[str, Any] = field(repr=False, default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for key in ("table_md", "comparison_md", "comparison"):
            data.pop(key)
        return data


# A callable that logs the model into the *active* MLflow run and returns its model URI.
LogModel = Callable[[NewModel], str]


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


def registered_candidates(client: MlflowClient, name: str) -> list[Candidate]:
    """Every version of ``name`` with its stored evaluation metrics."""
    candidates = []
    for mv in client.search_model_versions(f"name='{name}'"):
        raw = mv.tags.get(TAG_METRICS)
        if raw is None:
            log.warning("version %s of %s has no %s tag; not ranked", mv.version, name, TAG_METRICS)
            continue
        metrics = check_metrics(json.loads(raw), f"{name} version {mv.version} tag {TAG_METRICS}")
        candidates.append(
            Candidate(
                name=version_label(name, mv.version),
                metrics=metrics,
                version=str(mv.version),
                objective=mv.tags.get(TAG_OBJECTIVE),
            )
        )
    return candidates


def version_label(name: str, version: str | int) -> str:
    return f"{name}/v{version}"


def find_version(client: MlflowClient, name: str, sha256: str) -> str | None:
    """The version of ``name`` already holding the checkpoint with this hash, if any."""
    for mv in client.search_model_versions(f"name='{name}'"):
        if mv.tags.get(TAG_SHA256) == sha256:
            return str(mv.version)
    return None


def register_new(client: MlflowClient, name: str, model: NewModel, log_model: LogModel) -> str:
    """Log ``model`` into its training run and register it; reuse a version of the same file.

    Re-running the stage on the same checkpoint (e.g. after an evaluation change)
    refreshes that version's metrics instead of registering a duplicate candidate.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    sha = file_sha256(model.checkpoint)
    flat_metrics = flatten_metrics(model.metrics)
    try:
        client.get_run(model.run_id)
    except MlflowException as exc:
        raise DepthcoreError(
            f"training run {model.run_id} of {model.checkpoint} is not in the tracking "
            f"store {mlflow.get_tracking_uri()}: {exc}"
        ) from exc
    with mlflow.start_run(run_id=model.run_id):
        mlflow.log_metrics({f"eval.{k}": v for k, v in flat_metrics.items()})
        mlflow.log_text(model.per_image.read_text(), PER_IMAGE_ARTIFACT)  # for later rounds
        version = find_version(client, name, sha)
        if version is None:
            model_uri = log_model(model)
            mv = mlflow.register_model(
                model_uri,
                name,
                tags={TAG_OBJECTIVE: model.objective, TAG_SHA256: sha},
                await_registration_for=60,
            )
            version = str(mv.version)
            log.info("registered %s version %s from run %s", name, version, model.run_id)
        else:
            log.info("%s is already %s version %s", model.checkpoint, name, version)
    client.set_model_version_tag(name, version, TAG_METRICS, json.dumps(model.metrics))
    for key, value in flat_metrics.items():
        client.set_model_version_tag(name, version, key, value)
    return version


def current_champion(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version the alias points at, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
            return None
        raise


def champion_per_image(client: MlflowClient, name: str, version: str, alignment: str) -> PerImage:
    """The per-image metrics a registered version's run logged (empty when it has none)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    run_id = client.get_model_version(name, version).run_id
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=PER_IMAGE_ARTIFACT, tracking_uri=client.tracking_uri
        )
    except (MlflowException, OSError) as exc:
        log.warning("%s v%s: no %s in run %s (%s)", name, version, PER_IMAGE_ARTIFACT, run_id, exc)
        return {}
    return read_per_image(local, alignment)


def run_round(
    client: MlflowClient,
    cfg: RegisterConfig,
    new_models: list[NewModel],
    references: Mapping[str, tuple[NestedMetrics, Path]],
    log_model: LogModel,
) -> RoundResult:
    """Register this round's models, rank and compare all candidates, maybe move the alias."""
    name = cfg.registered_model
    new_versions = {m.objective: register_new(client, name, m, log_model) for m in new_models}
    candidates = registered_candidates(client, name)
    candidates += [
        Candidate(name=f"{REFERENCE_PREFIX}{ref}", metrics=metrics)
        for ref, (metrics, _) in references.items()
    ]
    ranks = compute_ranks(candidates, cfg.alignment, cfg.rank_metrics)
    for cand in candidates:
        if cand.version is not None:
            client.set_model_version_tag(name, cand.version, TAG_RANK, f"{ranks[cand.name]:.4f}")
            client.set_model_version_tag(name, cand.version, TAG_CANDIDATES, str(len(candidates)))
    before = current_champion(client, name, cfg.alias)
    before_label = version_label(name, before) if before else None
    new_labels = [version_label(name, v) for v in new_versions.values()]
    per_image = {version_label(name, new_versions[m.objective]): m.per_image for m in new_models}
    per_image |= {f"{REFERENCE_PREFIX}{ref}": path for ref, (_, path) in references.items()}
    tables = {label: read_per_image(path, cfg.alignment) for label, path in per_image.items()}
    if before_label is not None and before_label not in tables:
        tables[before_label] = champion_per_image(client, name, str(before), cfg.alignment)
    boot = {"resamples": cfg.bootstrap_resamples, "level": cfg.ci_level, "seed": cfg.bootstrap_seed}
    pairs = compare_all({k: v for k, v in tables.items() if v}, cfg.rank_metrics, **boot)
    challenger = min(new_labels, key=lambda lab: (ranks[lab], lab)) if new_labels else None
    vs_champion = None
    if challenger and before_label and tables.get(challenger) and tables.get(before_label):
        vs_champion = compare(tables[challenger], tables[before_label], ["abs_rel"], **boot)
    decision = decide_promotion(ranks, new_labels, before_label, vs_champion)
    after = before
    if decision.winner is not None:
        after = decision.winner.rsplit("/v", 1)[1]
        client.set_registered_model_alias(name, cfg.alias, after)
    record_decision(client, name, decision)
    log.info("champion: %s", decision.reason)
    after_label = version_label(name, after) if after else None
    table_md = rank_markdown(candidates, ranks, cfg.alignment, cfg.rank_metrics, after_label)
    comparison_md, comparison = comparison_document(
        pairs, alignment=cfg.alignment, decision=decision.to_json(), **boot
    )
    return RoundResult(
        registered_model=name,
        tracking_uri=client.tracking_uri,
        ranks=dict(sorted(ranks.items(), key=lambda kv: kv[1])),
        new_versions=new_versions,
        champion_before=before,
        champion_after=after,
        promoted=decision.promote,
        reason=decision.reason,
        decision=decision.to_json(),
        table_md=table_md,
        comparison_md=comparison_md,
        comparison=comparison,
    )


def record_decision(client: MlflowClient, name: str, decision: PromotionDecision) -> None:
    """Tag the challenger version and the registered model with the decision as JSON."""
    text = json.dumps(decision.to_json(), sort_keys=True)
    client.set_registered_model_tag(name, TAG_DECISION, text)
    if decision.challenger is not None and "/v" in decision.challenger:
        version = decision.challenger.rsplit("/v", 1)[1]
        client.set_model_version_tag(name, version, TAG_DECISION, text)


def collect_round(cfg: RegisterConfig, root: str | Path = ".") -> tuple[list[NewModel], dict]:
    """Read this round's checkpoints, run records and evaluation metrics from the stage outputs."""
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
    cfg: RegisterConfig, root: str | Path = ".", log_model: LogModel | None = None
) -> RoundResult:
    """The register stage: connect, register, rank, compare, promote; write and log the reports.

    Writes ``rank_table.md``, ``registry.json``, ``comparison.md`` and ``comparison.json``
    to ``cfg.out_dir`` (under ``root``) and logs the comparison files into every new
    model's training run (artifact folder ``register``).
    """
    new_models, references = collect_round(cfg, root)
    uri = resolve_tracking_uri(cfg.tracking_uri)
    client = connect(uri, timeout_s=cfg.http_timeout_s, max_retries=cfg.http_max_retries)
    result = run_round(client, cfg, new_models, references, log_model or log_depthcore_pyfunc)
    result.tracking_uri = uri
    out_dir = Path(root) / cfg.out_dir
    files = {
        "rank_table.md": result.table_md + "\n",
        "registry.json": json.dumps(result.to_json(), indent=2) + "\n",
        "comparison.md": result.comparison_md,
        "comparison.json": json.dumps(result.comparison, indent=2, sort_keys=True) + "\n",
    }
    for filename, text in files.items():
        write_text_atomic(out_dir / filename, text)
    for model in new_models:
        for filename in ("comparison.md", "comparison.json"):
            client.log_artifact(model.run_id, str(out_dir / filename), "register")
    return result


def log_depthcore_pyfunc(model: NewModel) -> str:
    """Log a trained checkpoint as the depthcore pyfunc model into the active run."""

    info = log_pyfunc_model(model.checkpoint)
    return info.model_uri
