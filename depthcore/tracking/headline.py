"""The headline metrics: one small JSON per candidate, so ``dvc metrics show`` reads at a glance.

The evaluate stage's ``metrics.json`` holds every metric of every alignment on every
benchmark (~150 numbers per model), which ``dvc metrics show`` prints as one unreadable
row per file. The register stage also writes ``<out_dir>/headline/<candidate>.json``
with only the rank and the ranked metrics (AbsRel, delta1) of the ranked alignment per
benchmark, for this round's objectives and the references. Files are named by role
(``depthart``, ``var_tf``, ``reference_constant_plane``), not version, so ``dvc metrics
diff`` compares this round's DepthART with the last one's::

    dvc metrics show --md outputs/register/headline
    dvc metrics diff --md HEAD~1 -- outputs/register/headline
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from depthcore.evaluation.ranking import NestedMetrics
from depthcore.io import atomic_path
from depthcore.tracking.registry import (
    REFERENCE_PREFIX,
    RegisterConfig,
    RoundResult,
    collect_round,
)

HEADLINE_DIR = "headline"


def headline_row(
    rank: float, metrics: NestedMetrics, alignment: str, rank_metrics: tuple[str, ...]
) -> dict[str, float]:
    """``{"rank": r, "<benchmark>_<metric>": v, ...}`` for one candidate (rounded to 4 places)."""
    row = {"rank": round(rank, 4)}
    for bench in sorted(metrics):
        values = metrics[bench].get(alignment, {})
        for name in rank_metrics:
            if name in values:
                row[f"{bench}_{name}"] = round(values[name], 4)
    return row


def round_headline(
    cfg: RegisterConfig, result: RoundResult, root: str | Path = "."
) -> dict[str, dict[str, float]]:
    """The rows of this round: each objective's new version (with its number) and each reference."""
    new_models, references = collect_round(cfg, root)
    rows: dict[str, dict[str, float]] = {}
    for model in new_models:
        label = result.new_versions[model.objective]  # e.g. "depthart-tiny/v3"
        rank = result.ranks[label]
        row = headline_row(rank, model.metrics, cfg.alignment, cfg.rank_metrics)
        rows[model.objective] = {**row, "version": int(label.rsplit("/v", 1)[1])}
    for ref, (metrics, _per_image) in references.items():
        rank = result.ranks[f"{REFERENCE_PREFIX}{ref}"]
        rows[f"reference_{ref}"] = headline_row(rank, metrics, cfg.alignment, cfg.rank_metrics)
    return rows


def _only_json(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but ``*.json`` files (a previous headline folder)."""
    return all(p.is_file() and p.suffix == ".json" for p in folder.iterdir())


def write_headline(out_dir: str | Path, rows: Mapping[str, Mapping[str, float]]) -> Path:
    """Write ``out_dir/headline/<name>.json`` per row, replacing the folder atomically."""
    folder = Path(out_dir) / HEADLINE_DIR
    with atomic_path(folder, owned=_only_json) as tmp:
        tmp.mkdir(parents=True)
        for name, row in rows.items():
            (tmp / f"{name}.json").write_text(json.dumps(dict(row), indent=1) + "\n")
    return folder
