"""Paired bootstrap intervals, on hand-computed cases (the champion rule: test_champion.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from depthcore.evaluation.comparison import (
    compare,
    compare_all,
    comparison_document,
    half_or_more,
    paired_bootstrap_ci,
    read_per_image,
)


def test_a_constant_difference_has_a_zero_width_interval() -> None:
    a = np.array([0.3, 0.5, 0.2, 0.9])
    ci = paired_bootstrap_ci(a, a - 0.1, resamples=500, seed=0)
    assert (ci.diff, ci.lo, ci.hi) == pytest.approx((0.1, 0.1, 0.1))
    assert ci.n == 4 and ci.mean_a == pytest.approx(0.475) and ci.excludes_zero


def test_two_pairs_resample_distribution_by_hand() -> None:
    """d = (0, 1): a resample of 2 images has mean 0, 0.5 or 1 with chances 1/4, 1/2, 1/4.

    So the 2.5 % quantile is 0 and the 97.5 % one is 1 (each end holds 25 % > 2.5 %),
    and a 40 % interval (30 %..70 % quantiles) is the single point 0.5.
    """
    ci = paired_bootstrap_ci([0.0, 1.0], [0.0, 0.0], resamples=4000, seed=1)
    assert (ci.lo, ci.hi, ci.diff) == (0.0, 1.0, 0.5)
    narrow = paired_bootstrap_ci([0.0, 1.0], [0.0, 0.0], resamples=4000, level=0.4, seed=1)
    assert (narrow.lo, narrow.hi) == (0.5, 0.5)


def test_interval_is_seeded_paired_and_antisymmetric() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.5, 48)
    a = base + rng.normal(0.0, 0.01, 48)  # the per-image difficulty cancels in the pairs
    b = base + 0.02 + rng.normal(0.0, 0.01, 48)
    ci = paired_bootstrap_ci(a, b, seed=3)
    assert ci == paired_bootstrap_ci(a, b, seed=3)
    assert ci != paired_bootstrap_ci(a, b, seed=4)
    swapped = paired_bootstrap_ci(b, a, seed=3)
    assert (swapped.lo, swapped.hi) == pytest.approx((-ci.hi, -ci.lo))
    assert ci.hi < 0 and ci.a_better("abs_rel") and not ci.a_better("delta1")
    # pure noise around the same mean: the interval covers 0
    noise = paired_bootstrap_ci(base + rng.normal(0, 0.05, 48), base, seed=3)
    assert noise.lo < 0 < noise.hi and noise.verdict("abs_rel", "x", "y") == (
        "no significant difference"
    )
    assert ci.verdict("abs_rel", "x", "y") == "x better"
    assert ci.verdict("delta1", "x", "y") == "y better"


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap_ci([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least one pair"):
        paired_bootstrap_ci([], [])
    with pytest.raises(ValueError, match="non-finite"):
        paired_bootstrap_ci([1.0, np.nan], [1.0, 2.0])


def _write_per_image(path: Path, rows: list[tuple[str, str, str, float, float]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["benchmark", "index", "name", "alignment", "abs_rel", "delta1", "pe_fla"])
        for i, (bench, name, alignment, abs_rel, delta1) in enumerate(rows):
            writer.writerow([bench, i, name, alignment, abs_rel, delta1, ""])
    return path


def test_compare_pairs_images_by_benchmark_and_name(tmp_path: Path) -> None:
    a = read_per_image(
        _write_per_image(
            tmp_path / "a.csv",
            [
                ("nyu", "f1", "lsq", 0.1, 0.9),
                ("nyu", "f2", "lsq", 0.2, 0.8),
                ("nyu", "f1", "median", 9.0, 0.0),
                ("tum", "t1", "lsq", 0.3, 0.7),
            ],
        ),
        "lsq",
    )
    assert set(a) == {("nyu", "f1"), ("nyu", "f2"), ("tum", "t1")}
    assert "pe_fla" not in a[("nyu", "f1")]  # empty = not computed, not zero
    b = {("nyu", "f2"): {"abs_rel": 0.5, "delta1": 0.5}, ("nyu", "f1"): {"abs_rel": 0.3}}
    cis = compare(a, b, ["abs_rel", "delta1"], resamples=200)
    assert set(cis) == {"nyu"}  # tum has no shared image
    assert cis["nyu"]["abs_rel"].n == 2 and cis["nyu"]["abs_rel"].diff == pytest.approx(-0.25)
    assert cis["nyu"]["delta1"].n == 1  # f1 has no delta1 in b
    pairs = compare_all({"A": a, "B": b, "C": a}, ["abs_rel"], resamples=50)
    assert [(p["a"], p["b"]) for p in pairs] == [("A", "B"), ("A", "C"), ("B", "C")]
    md, data = comparison_document(
        pairs, alignment="lsq", level=0.95, resamples=50, seed=0, decision={"reason": "why"}
    )
    assert "| A | B | nyu | abs_rel |" in md and md.rstrip().endswith("why")
    assert data["pairs"][1]["benchmarks"]["nyu"]["abs_rel"]["verdict"] == (
        "no significant difference"
    )
    with pytest.raises(Exception, match="not found"):
        read_per_image(tmp_path / "missing.csv", "lsq")


def test_half_or_more() -> None:
    assert half_or_more(2, 4) and half_or_more(2, 3) and half_or_more(1, 1)
    assert not half_or_more(1, 4) and not half_or_more(1, 3) and not half_or_more(0, 0)
