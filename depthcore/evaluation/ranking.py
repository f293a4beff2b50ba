"""Rank tables and the metrics they are built from: the pure part of the registry (no MLflow).

:func:`rank_table` is the DepthART paper's rank metric (per (benchmark, metric) rank of the
means, averaged); :func:`rank_axes` picks the benchmarks and metrics a set of candidates
shares; :func:`rank_markdown` writes the register stage's table. Who is champion, with
ranks whose ties are the paired bootstrap's intervals, is :mod:`depthcore.evaluation.champion`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
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


def rank_axes(
    candidates: Sequence[Candidate], alignment: str, rank_metrics: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """The (benchmarks, metrics) a set of candidates is ranked on, in one alignment.

    Only benchmarks every candidate has and metrics every candidate reports there, so a
    version evaluated under an older metric list does not make the whole round fail.
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
    shared = sorted(set.intersection(*(set(per) for per in results.values())))
    metrics = [m for m in rank_metrics if all(m in results[c][b] for c in results for b in shared)]
    if not shared or not metrics:
        raise DataError(
            f"candidates {sorted(results)} share no benchmark with any of the metrics "
            f"{list(rank_metrics)} to rank on"
        )
    return shared, metrics


def rank_markdown(
    candidates: list[Candidate],
    ranks: Mapping[str, float],
    alignment: str,
    rank_metrics: tuple[str, ...],
    champion: str | None,
    ranked: Collection[str] | None = None,
) -> str:
    """The rank table as markdown: one row per candidate, best first.

    ``ranked``: the pool the ranks were computed in (this round's candidates and the
    champion); the others (past versions, references) follow under a rule, their rank in
    parentheses: where each would stand were it added to the pool alone.
    """
    ranked = set(ranks) if ranked is None else set(ranked)
    benches = sorted(set.intersection(*(set(c.metrics) for c in candidates)))
    cols = [(b, m) for b in benches for m in rank_metrics]
    head = ["candidate", "objective", "rank"] + [f"{b} {m}" for b, m in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = sorted(candidates, key=lambda c: (c.name not in ranked, ranks[c.name], c.name))
    for i, cand in enumerate(order):
        if cand.name not in ranked and (i == 0 or order[i - 1].name in ranked):
            lines.append("| *shown beside, not ranked with them:* |" + " |" * (len(head) - 1))
        label = cand.name + (" (champion)" if cand.name == champion else "")
        rank = f"{ranks[cand.name]:.3f}"
        cells = [label, cand.objective or "-", rank if cand.name in ranked else f"({rank})"]
        for b, m in cols:
            value = cand.metrics[b].get(alignment, {}).get(m)
            cells.append("-" if value is None else f"{value:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return (
        "\n".join(lines)
        + f"\n\nMean rank over {len(benches)} benchmarks x "
        + f"{list(rank_metrics)} ({alignment} alignment) among this round's candidates and "
        + "the champion; 1 is best; a difference inside its paired bootstrap interval is a "
        + "tie.\n"
    )
