"""The records of a registration round: its config, the models it registers, its result.

Kept apart from the logic so that :mod:`depthcore.tracking.registry` (deciding) and
:mod:`depthcore.tracking.publish` (writing what the UI shows) share them without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depthcore.config import frozen, param
from depthcore.evaluation.ranking import NestedMetrics


@frozen
class RegisterConfig:
    """The ``register`` section of params.yaml (where it logs: the ``tracking`` section,
    :class:`depthcore.config.TrackingConfig`)."""

    # the product model: its `alias` is the served champion
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
    # the pool ``ranks`` ranked together (this round's models and the champion); the other
    # labels in ``ranks`` (past versions, references) were ranked beside it, each alone
    ranked: list[str] = field(default_factory=list)
    register_run_id: str = ""
    register_experiment_id: str = ""
    table_md: str = field(repr=False, default="")
    comparison_md: str = field(repr=False, default="")
    comparison: dict[str, Any] = field(repr=False, default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for key in ("table_md", "comparison_md", "comparison"):
            data.pop(key)
        return data
