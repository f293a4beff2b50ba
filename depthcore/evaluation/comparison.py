"""Is one model really better than another? Paired bootstrap confidence intervals.

A mean over 48 images moves in the second decimal when training is re-run, so a
rank table alone cannot say which of two models is better. Every model is scored
on the same images, so the per-image differences are paired: resampling images
with replacement (the same resample for both models) and taking the mean
difference each time gives the sampling distribution of the mean difference; its
2.5 and 97.5 percentiles are the 95 % confidence interval (percentile bootstrap,
Efron & Tibshirani 1993, ch. 13). An interval that excludes 0 is a difference the
benchmark's images support; one that includes 0 is "no significant difference".

Everything here is pure (numpy and the per-image CSV the evaluation writes); the
register stage calls it and writes ``comparison.md`` / ``comparison.json``.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthcore.errors import DataError
from depthcore.evaluation.metrics import metric_direction

#: (benchmark, image name) -> metric -> value, one alignment of one model.
PerImage = dict[tuple[str, str], dict[str, float]]


@dataclass(frozen=True)
class DiffCI:
    """Mean paired difference ``a - b`` over ``n`` images and its bootstrap interval."""

    mean_a: float
    mean_b: float
    diff: float
    lo: float
    hi: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0.0 or self.hi < 0.0

    def a_better(self, metric: str) -> bool:
        """True when ``a`` is significantly better than ``b`` on ``metric``."""
        if metric_direction(metric) == "lower":
            return self.hi < 0.0
        return self.lo > 0.0

    def verdict(self, metric: str, a: str, b: str) -> str:
        """Words that claim only what the interval supports."""
        if not self.excludes_zero:
            return "no significant difference"
        return f"{a} better" if self.a_better(metric) else f"{b} better"


def paired_bootstrap_ci(
    a_N: Sequence[float] | np.ndarray,
    b_N: Sequence[float] | np.ndarray,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> DiffCI:
    """Percentile-bootstrap interval of ``mean(a - b)`` over paired samples (module docstring).

    Deterministic for a given ``seed``; swapping ``a`` and ``b`` negates the interval.
    """
    a = np.asarray(a_N, dtype=np.float64).ravel()
    b = np.asarray(b_N, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")
    if a.size == 0:
        raise ValueError("paired bootstrap needs at least one pair")
    if not (0.0 < level < 1.0) or resamples < 1:
        raise ValueError(f"need 0 < level < 1 and resamples >= 1, got {level}, {resamples}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("paired bootstrap got a non-finite value")
    d_N = a - b
    rng = np.random.default_rng(seed)
    idx_RN = rng.integers(0, d_N.size, size=(resamples, d_N.size))
    means_R = d_N[idx_RN].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means_R, [tail, 1.0 - tail])
    return DiffCI(float(a.mean()), float(b.mean()), float(d_N.mean()), float(lo), float(hi), a.size)


def read_per_image(path: str | Path, alignment: str) -> PerImage:
    """The ``alignment`` rows of an evaluation's per_image.csv, keyed by (benchmark, name)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: per-image metrics not found (run the evaluate stage first)")
    out: PerImage = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"benchmark", "name", "alignment"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: columns {sorted(missing)} missing")
        for row in reader:
            if row["alignment"] != alignment:
                continue
            key = (row["benchmark"], row["name"])
            if key in out:
                raise DataError(f"{path}: image {key} appears twice for {alignment}")
            out[key] = {k: float(v) for k, v in row.items() if v not in ("", None) and _is_num(v)}
    return out


def _is_num(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def compare(
    a: PerImage,
    b: PerImage,
    metrics: Sequence[str],
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, DiffCI]]:
    """``{benchmark: {metric: DiffCI(a - b)}}`` over the images both were scored on.

    Images are paired by (benchmark, name); a benchmark the two share no image of
    is left out. Each (benchmark, metric) uses its own seed offset so the intervals
    are independent draws, yet reproducible.
    """
    shared = sorted(set(a) & set(b))
    result: dict[str, dict[str, DiffCI]] = {}
    for bench_i, (bench, keys) in enumerate(itertools.groupby(shared, key=lambda k: k[0])):
        keys = list(keys)
        per_metric = {}
        for metric_i, metric in enumerate(metrics):
            pairs = [
                (a[k][metric], b[k][metric]) for k in keys if metric in a[k] and metric in b[k]
            ]
            if not pairs:
                continue
            a_N, b_N = zip(*pairs, strict=True)
            per_metric[metric] = paired_bootstrap_ci(
                a_N, b_N, resamples=resamples, level=level, seed=seed + 1000 * bench_i + metric_i
            )
        if per_metric:
            result[bench] = per_metric
    return result


def compare_all(
    per_image: Mapping[str, PerImage],
    metrics: Sequence[str],
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Every unordered pair of candidates (in the given order): ``[{a, b, benchmarks}]``."""
    pairs = []
    for name_a, name_b in itertools.combinations(per_image, 2):
        cis = compare(
            per_image[name_a],
            per_image[name_b],
            metrics,
            resamples=resamples,
            level=level,
            seed=seed,
        )
        pairs.append({"a": name_a, "b": name_b, "benchmarks": cis})
    return pairs


def pairs_to_json(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON-ready pairs: each interval as a dict with its verdict."""
    return [
        {
            "a": p["a"],
            "b": p["b"],
            "benchmarks": {
                bench: {
                    m: asdict(ci) | {"verdict": ci.verdict(m, p["a"], p["b"])}
                    for m, ci in per_metric.items()
                }
                for bench, per_metric in p["benchmarks"].items()
            },
        }
        for p in pairs
    ]


def pairs_markdown(pairs: list[dict[str, Any]], level: float) -> str:
    """One table: pair, benchmark, metric, means, difference a - b and its interval, verdict."""
    pct = f"{100 * level:g} %"
    lines = [
        f"| a | b | benchmark | metric | mean a | mean b | a - b | {pct} CI | n | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in pairs:
        for bench, per_metric in p["benchmarks"].items():
            for m, ci in per_metric.items():
                lines.append(
                    f"| {p['a']} | {p['b']} | {bench} | {m} | {ci.mean_a:.4f} | {ci.mean_b:.4f}"
                    f" | {ci.diff:+.4f} | [{ci.lo:+.4f}, {ci.hi:+.4f}] | {ci.n}"
                    f" | {ci.verdict(m, p['a'], p['b'])} |"
                )
    return "\n".join(lines) + "\n"


def significant_share(cis: Mapping[str, Mapping[str, DiffCI]], metric: str) -> tuple[int, int]:
    """(benchmarks where ``a`` is significantly better on ``metric``, benchmarks compared)."""
    compared = [per[metric] for per in cis.values() if metric in per]
    wins = sum(ci.a_better(metric) for ci in compared)
    return wins, len(compared)


def half_or_more(wins: int, total: int) -> bool:
    """At least half of ``total`` (and at least one)."""
    return total > 0 and wins >= math.ceil(total / 2)


__all__ = [
    "DiffCI",
    "PerImage",
    "compare",
    "compare_all",
    "comparison_document",
    "half_or_more",
    "paired_bootstrap_ci",
    "pairs_markdown",
    "pairs_to_json",
    "read_per_image",
    "significant_share",
]


def comparison_document(
    pairs: list[dict[str, Any]],
    *,
    alignment: str,
    level: float,
    resamples: int,
    seed: int,
    decision: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(comparison.md text, comparison.json data)`` of a round's pairwise comparisons."""
    data: dict[str, Any] = {
        "alignment": alignment,
        "level": level,
        "resamples": resamples,
        "seed": seed,
        "method": "paired percentile bootstrap over images; difference = a - b",
        "pairs": pairs_to_json(pairs),
    }
    md = [
        "# Pairwise comparison of the candidates",
        "",
        f"Per benchmark, the mean per-image difference a - b ({alignment} alignment) and its "
        f"{100 * level:g} % paired bootstrap interval ({resamples} resamples of the images, "
        f"seed {seed}). AbsRel: lower is better; delta1: higher is better. An interval that "
        "includes 0 is reported as no significant difference.",
        "",
        pairs_markdown(pairs, level),
    ]
    if decision is not None:
        data["decision"] = dict(decision)
        md += ["## Champion decision", "", str(decision["reason"]), ""]
    return "\n".join(md), data
