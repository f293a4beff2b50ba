"""Ranking candidates and deciding promotion: the pure part of the registry (no MLflow).

Candidates are ranked with the DepthART paper's rank metric
(:func:`rank_table`): per (benchmark, metric) rank, averaged.
A rank is an ordering of means, and means over a few dozen images are noisy, so
:func:`decide_promotion` moves the champion only on a real win: the challenger's
mean rank is strictly lower than the champion's AND its AbsRel improvement over the
champion is significant (the paired bootstrap interval of the difference excludes 0,
:mod:`depthcore.evaluation.comparison`) on at least half of the benchmarks. Anything
else, ties included, keeps the champion. The decision and its reason are a
:class:`PromotionDecision`, serialisable to JSON for the registry tags and reports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthcore.errors import DataError, DepthcoreError
from depthcore.evaluation.comparison import DiffCI, half_or_more
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


#: The metric whose improvement must be significant for a promotion.
PROMOTION_METRIC = "abs_rel"


@dataclass(frozen=True)
class PromotionDecision:
    """What the champion rule decided and why (JSON via :meth:`to_json`).

    ``winner`` is the label the alias moves to (None: it stays). ``significant``
    lists the benchmarks where the challenger's AbsRel is significantly lower than
    the champion's, out of ``compared``.
    """

    promote: bool
    winner: str | None
    challenger: str | None
    champion: str | None
    challenger_rank: float | None
    champion_rank: float | None
    significant: tuple[str, ...]
    compared: tuple[str, ...]
    reason: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["significant"] = list(self.significant)
        data["compared"] = list(self.compared)
        return data


def decide_promotion(
    ranks: Mapping[str, float],
    new_labels: list[str],
    champion_label: str | None,
    vs_champion: Mapping[str, Mapping[str, DiffCI]] | None = None,
) -> PromotionDecision:
    """Promote this round's best-ranked new model only on a real win (module docstring).

    ``vs_champion``: ``{benchmark: {metric: DiffCI(challenger - champion)}}`` from
    :func:`depthcore.evaluation.comparison.compare`; None or empty when the champion's per-image
    metrics are unavailable, which keeps the champion (no evidence of a win).
    """

    def decision(winner: str | None, reason: str, sig=(), compared=()) -> PromotionDecision:
        return PromotionDecision(
            promote=winner is not None,
            winner=winner,
            challenger=best,
            champion=champion_label,
            challenger_rank=ranks.get(best) if best else None,
            champion_rank=ranks.get(champion_label) if champion_label else None,
            significant=tuple(sig),
            compared=tuple(compared),
            reason=reason,
        )

    if not new_labels:
        best = None
        return decision(None, "no new model this round")
    best = min(new_labels, key=lambda lab: (ranks[lab], lab))
    if champion_label is None:
        return decision(best, f"{best} (rank {ranks[best]:.3f}) is the first champion")
    if champion_label == best:
        return decision(None, f"{best} (rank {ranks[best]:.3f}) is already champion")
    if champion_label not in ranks:
        return decision(
            best, f"champion {champion_label} has no stored metrics; {best} replaces it"
        )
    r_new, r_old = ranks[best], ranks[champion_label]
    cis = vs_champion or {}
    compared = sorted(b for b, per in cis.items() if PROMOTION_METRIC in per)
    sig = [b for b in compared if cis[b][PROMOTION_METRIC].a_better(PROMOTION_METRIC)]
    ranks_text = f"{best} rank {r_new:.3f} vs champion {champion_label} rank {r_old:.3f}"
    sig_text = (
        f"AbsRel significantly better on {len(sig)} of {len(compared)} benchmarks"
        + (f" ({', '.join(sig)})" if sig else "")
        + " (paired bootstrap CI excludes 0)"
    )
    if r_new > r_old:
        return decision(None, f"keep champion: {ranks_text} (worse)", sig, compared)
    if r_new == r_old:
        return decision(
            None, f"keep champion: {ranks_text} (a tie keeps the champion)", sig, compared
        )
    if not compared:
        return decision(
            None,
            f"keep champion: {ranks_text}, but no per-image metrics of both to test significance",
        )
    if not half_or_more(len(sig), len(compared)):
        return decision(
            None, f"keep champion: {ranks_text} but {sig_text}; at least half needed", sig, compared
        )
    return decision(best, f"promote {best}: {ranks_text} and {sig_text}", sig, compared)
