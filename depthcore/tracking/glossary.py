"""MLflow metric names that say what they measure and which way is better.

The evaluation's own keys (``abs_rel``, ``pe_fla``, ``dbe_com``...) are short because
they index tables; in the MLflow UI they are all a reader sees. Every name logged to
MLflow is built here, from :data:`GLOSSARY`, so the runs table, the registry tags and
the docs/evaluation.md glossary (:func:`glossary_markdown`, also the experiment's description)
cannot drift apart. Counts (``num_images``, ``num_planes``) are constants of a
benchmark, not results: they are logged as params.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from depthcore.evaluation.metrics import metric_direction


@dataclass(frozen=True)
class Term:
    """One metric as the UI shows it: its MLflow name, meaning, and better direction."""

    mlflow_name: str
    meaning: str


#: evaluation key -> how it is named and explained in MLflow.
GLOSSARY: dict[str, Term] = {
    "abs_rel": Term("abs_rel", "mean of abs(pred - gt) / gt after alignment"),
    "sq_rel": Term("sq_rel", "mean (pred - gt)^2 / gt"),
    "rmse": Term("rmse_m", "root mean squared depth error, metres"),
    "rmse_log": Term("rmse_log", "RMSE of log depth"),
    "log10": Term("log10_err", "mean of abs(log10 pred - log10 gt)"),
    "delta1": Term("delta1_within_1.25", "fraction of pixels with max(pred/gt, gt/pred) < 1.25"),
    "delta2": Term("delta2_within_1.56", "same with threshold 1.25^2"),
    "delta3": Term("delta3_within_1.95", "same with threshold 1.25^3"),
    "bad_pixel": Term("bad_pixel_frac", "1 - delta1 (the DepthART paper's 'd1' column)"),
    "mae": Term("mae_m", "mean abs(pred - gt) after alignment, metres (the paper protocol's MAE)"),
    "pe_fla": Term("plane_flatness_err_cm", "iBims-1 planarity: spread of points about planes"),
    "pe_ori": Term("plane_orientation_err_deg", "iBims-1 planarity: angle of fitted planes"),
    "dbe_acc": Term("edge_accuracy_err_px", "iBims-1 depth-boundary accuracy (distance)"),
    "dbe_com": Term("edge_completeness_err_px", "iBims-1 depth-boundary completeness"),
}

#: Keys of an evaluation summary that are counts, logged as params.
COUNT_KEYS: tuple[str, ...] = ("num_images", "num_planes")

#: Metrics of a training run and of the registry that are not evaluation keys.
RUN_TERMS: dict[str, tuple[str, str]] = {
    "loss": ("lower", "training cross-entropy over all scales' tokens"),
    "loss_scale_<h>x<w>": ("lower", "training cross-entropy of one scale's tokens"),
    "val_loss": ("lower", "validation cross-entropy"),
    "acc": ("higher", "training token accuracy (argmax == target)"),
    "val_abs_rel_scale_<h>x<w>": ("lower", "validation AbsRel after generating up to that scale"),
    "val_abs_rel": ("lower", "validation AbsRel at the final scale (headline)"),
    "refinement_gain": ("higher", "(AbsRel at 1x1 - final AbsRel) / AbsRel at 1x1"),
    "mean_abs_rel": ("lower", "headline: AbsRel averaged over the benchmarks (lsq alignment)"),
    "mean_delta1": ("higher", "headline: delta1 averaged over the benchmarks (lsq alignment)"),
    "rank": (
        "lower",
        "headline: mean rank among this round's models and the sitting champion (differences "
        "inside the paired bootstrap interval tie); 1 is best",
    ),
    "exposure_<decoding>_loss_gap_scale_<h>x<w>": (
        "lower",
        "exposure gap: validation loss with the model's own rollout minus with teacher-forced "
        "inputs, at one scale",
    ),
    "exposure_<decoding>_abs_rel_gap_scale_<h>x<w>": (
        "lower",
        "exposure gap: AbsRel after that scale with own inputs minus with teacher-forced ones",
    ),
    "exposure_<decoding>_abs_rel_teacher_forced_scale_<h>x<w>": (
        "lower",
        "AbsRel after that scale when every earlier scale was the tokenizer's own (teacher-forced)",
    ),
    "exposure_<decoding>_abs_rel_own_scale_<h>x<w>": (
        "lower",
        "AbsRel after that scale when every earlier scale was the model's own choice",
    ),
}


def arrow(direction: str) -> str:
    """The one-glyph direction shown next to a value (lower or higher is better)."""
    return "↓" if direction == "lower" else "↑"


def eval_metric_name(benchmark: str, alignment: str, key: str) -> str:
    """``nyu/lsq/abs_rel``: MLflow groups its charts by the part before the last slash."""
    return f"{benchmark}/{alignment}/{GLOSSARY[key].mlflow_name}"


def eval_metrics_and_params(
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> tuple[dict[str, float], dict[str, str]]:
    """An evaluate stage's metrics.json as MLflow metrics (glossary names) and count params.

    A key not in :data:`GLOSSARY` is an error: a new metric must be explained first.
    """
    out_metrics: dict[str, float] = {}
    params: dict[str, str] = {}
    for bench, per_align in metrics.items():
        for align, per_metric in per_align.items():
            for key, value in per_metric.items():
                if key in COUNT_KEYS:
                    params[f"{bench}.{key}"] = str(int(value))
                elif key not in GLOSSARY:
                    raise KeyError(f"metric {key!r} of {bench}/{align} has no glossary entry")
                else:
                    out_metrics[eval_metric_name(bench, align, key)] = float(value)
    return out_metrics, params


def headline_metrics(
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]], alignment: str
) -> dict[str, float]:
    """``mean_abs_rel`` and ``mean_delta1`` over the benchmarks, the runs table's columns."""
    out = {}
    for key in ("abs_rel", "delta1"):
        values = [per[alignment][key] for per in metrics.values() if key in per.get(alignment, {})]
        if values:
            out[f"mean_{key}"] = sum(values) / len(values)
    return out


def glossary_markdown(alignments: Sequence[str] = ("lsq", "median")) -> str:
    """The metrics glossary as markdown (docs/evaluation.md, MLflow experiment description)."""
    lines = [
        "Metric names (↓ lower is better, ↑ higher is better). Evaluation metrics are "
        f"logged as `<benchmark>/<alignment>/<name>` with alignment in {list(alignments)}; "
        "counts (`<benchmark>.num_images`) are params.",
        "",
        "| name | better | meaning |",
        "|---|---|---|",
    ]
    for name, (direction, meaning) in RUN_TERMS.items():
        lines.append(f"| `{name}` | {arrow(direction)} | {meaning} |")
    for key, term in GLOSSARY.items():
        lines.append(f"| `{term.mlflow_name}` | {arrow(metric_direction(key))} | {term.meaning} |")
    return "\n".join(lines) + "\n"
