"""Ranking candidates and deciding promotion: the pure part of the registry (no MLflow).

Candidates are ranked with the DepthART paper's rank metric
(:func:`rank_table`): per (benchmark, metric) rank, averaged.
A new model is promoted only when it has a strictly lower mean rank than the
current champion in the same table, so ties and regressions keep the champion.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthcore.errors import DataError, DepthcoreError
from depthcore.evaluation.metrics import metric_direction

# benchmark -> alignment -> metric -> value, the layout of the evaluate stage's metrics.json
NestedMetrics = dict[str, dict[str, dict[str, float]]]


@dataclass(frozen=True)
class Candidate:
    """One row of the rank table: a registered version or a reference predictor."""

    name: str
    metrics: NestedMetrics
    version: str | None = None
    objective: str | None = None


def average_ranks(scores_M: np.ndarray) -> np.ndarray:
    """Ranks 1..M of ``scores_M`` (lowest first); tied scores share the mean of their ranks."""
    _, inverse_M, counts_U = np.unique(scores_M, return_inverse=True, return_counts=True)
    first_U = np.cumsum(counts_U) - counts_U + 1  # rank of the first member of each tie group
    return (first_U + (counts_U - 1) / 2.0)[inverse_M]


def rank_table(
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: Sequence[str],
) -> dict[str, float]:
    """Mean rank of each model over all (benchmark, metric) pairs; 1 is best.

    ``results[model][benchmark][metric]``. For every benchmark present for all
    models and every metric in ``metrics``, the models are ranked (lower or
    higher is better per :data:`METRICS`; ties share the mean of their ranks;
    a NaN counts as worse than any number); the ranks are then averaged.
    A metric missing from a shared benchmark raises KeyError naming it.
    """
    if not results:
        raise ValueError("rank_table needs at least one model")
    if not metrics:
        raise ValueError("rank_table needs at least one metric")
    directions = {m: metric_direction(m) for m in metrics}
    models = list(results)
    benchmarks = [b for b in results[models[0]] if all(b in results[m] for m in models)]
    if not benchmarks:
        raise ValueError(f"the models {models} share no benchmark to rank on")
    ranks_MP = []
    for bench in benchmarks:
        for metric, direction in directions.items():
            values = []
            for model in models:
                if metric not in results[model][bench]:
                    raise KeyError(f"model {model!r} has no {metric!r} on benchmark {bench!r}")
                values.append(float(results[model][bench][metric]))
            v = np.asarray(values, dtype=np.float64)
            score = v if direction == "lower" else -v
            score = np.where(np.isnan(score), np.inf, score)
            ranks_MP.append(average_ranks(score))
    mean_rank_M = np.mean(np.stack(ranks_MP, axis=1), axis=1)
    return {model: float(r) for model, r in zip(models, mean_rank_M, strict=True)}


def read_metrics(path: str | Path) -> NestedMetrics:
    """Read an evaluate stage's metrics.json, checking its benchmark/alignment/metric layout."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: metrics file not found (run the evaluate stage first)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from exc
    return check_metrics(data, str(path))


def check_metrics(data: Any, where: str) -> NestedMetrics:
    """Validate the nested layout and return it with float values."""
    if not isinstance(data, dict) or not data:
        raise DataError(f"{where}: expected {{benchmark: {{alignment: {{metric: value}}}}}}")
    out: NestedMetrics = {}
    for bench, per_align in data.items():
        if not isinstance(per_align, dict):
            raise DataError(f"{where}: benchmark '{bench}' is not a mapping of alignments")
        out[bench] = {}
        for align, per_metric in per_align.items():
            if not isinstance(per_metric, dict):
                raise DataError(f"{where}: '{bench}.{align}' is not a mapping of metrics")
            values = {}
            for name, value in per_metric.items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise DataError(f"{where}: '{bench}.{align}.{name}' is not a number: {value!r}")
                values[name] = float(value)
            out[bench][align] = values
    return out


def flatten_metrics(metrics: NestedMetrics, sep: str = ".") -> dict[str, float]:
    """``{bench: {align: {metric: v}}}`` -> ``{"bench.align.metric": v}`` (for MLflow)."""
    return {
        sep.join((bench, align, name)): value
        for bench, per_align in metrics.items()
        for align, per_metric in per_align.items()
        for name, value in per_metric.items()
    }


def compute_ranks(
    candidates: list[Candidate], alignment: str, rank_metrics: tuple[str, ...]
) -> dict[str, float]:
    """Mean rank of every candidate (:func:`rank_table`) in one alignment.

    Only metrics that every candidate reports are ranked, so a version evaluated
    under an older metric list does not make the whole round fail.
    """

    if not candidates:
        raise DepthcoreError("nothing to rank: no registered version and no reference")
    results = {}
    for cand in candidates:
        per_bench = {}
        for bench, per_align in cand.metrics.items():
            if alignment not in per_align:
                raise DataError(
                    f"candidate {cand.name}: benchmark '{bench}' has no '{alignment}' metrics"
                )
            per_bench[bench] = per_align[alignment]
        results[cand.name] = per_bench
    shared = set.intersection(*(set(per) for per in results.values()))
    metrics = tuple(
        m for m in rank_metrics if all(m in results[c][b] for c in results for b in shared)
    )
    if not shared or not metrics:
        raise DataError(
            f"candidates {sorted(results)} share no benchmark with any of the metrics "
            f"{list(rank_metrics)} to rank on"
        )
    return rank_table(results, metrics)


def rank_markdown(
    candidates: list[Candidate],
    ranks: Mapping[str, float],
    alignment: str,
    rank_metrics: tuple[str, ...],
    champion: str | None,
) -> str:
    """The rank table as markdown: one row per candidate, best first."""
    benches = sorted(set.intersection(*(set(c.metrics) for c in candidates)))
    cols = [(b, m) for b in benches for m in rank_metrics]
    head = ["candidate", "objective", "rank"] + [f"{b} {m}" for b, m in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cand in sorted(candidates, key=lambda c: (ranks[c.name], c.name)):
        label = cand.name + (" (champion)" if cand.name == champion else "")
        cells = [label, cand.objective or "-", f"{ranks[cand.name]:.3f}"]
        for b, m in cols:
            value = cand.metrics[b].get(alignment, {}).get(m)
            cells.append("-" if value is None else f"{value:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return (
        "\n".join(lines)
        + f"\n\nMean rank over {len(benches)} benchmarks x "
        + (f"{list(rank_metrics)} ({alignment} alignment); 1 is best.\n")
    )


def decide_promotion(
    ranks: Mapping[str, float], new_labels: list[str], champion_label: str | None
) -> tuple[str | None, str]:
    """The label to promote (or None) and why: strictly lower rank than the champion wins."""
    if not new_labels:
        return None, "no new model this round"
    best = min(new_labels, key=lambda lab: (ranks[lab], lab))
    if champion_label is None:
        return best, f"{best} (rank {ranks[best]:.3f}) is the first champion"
    if champion_label == best:
        return None, f"{best} (rank {ranks[best]:.3f}) is already champion"
    if champion_label not in ranks:
        return best, f"champion {champion_label} has no stored metrics; {best} replaces it"
    if ranks[best] < ranks[champion_label]:
        return best, (
            f"{best} (rank {ranks[best]:.3f}) beats champion {champion_label} "
            f"(rank {ranks[champion_label]:.3f})"
        )
    return None, (
        f"{best} (rank {ranks[best]:.3f}) does not beat champion {champion_label} "
        f"(rank {ranks[champion_label]:.3f})"
    )
