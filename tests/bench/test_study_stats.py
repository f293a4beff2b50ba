"""The seed study's statistics and the sweep's grid parser, on synthetic inputs (fast)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.learning.dvc_exp import GridError, parse_grid, parse_sets
from bench.learning.study_stats import band, fmt, mean_std, paired

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def params_file() -> Path:
    """The project's params.yaml (read only): points are checked by its dataclasses."""
    return REPO_ROOT / "params.yaml"


def test_mean_std_is_the_sample_std() -> None:
    mean, std = mean_std([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    # by hand: deviations -4/3, -1/3, 5/3 -> squares 16/9 + 1/9 + 25/9 = 42/9, / (3 - 1)
    assert std == pytest.approx(math.sqrt(21 / 9))


def test_one_seed_has_no_spread() -> None:
    mean, std = mean_std([0.3])
    assert mean == 0.3 and math.isnan(std)
    assert fmt(mean, std) == "0.300"
    assert fmt(0.3456, 0.0123) == "0.346 ± 0.012"
    with pytest.raises(ValueError, match="no values"):
        mean_std([])


def test_band_is_per_scale() -> None:
    mean_K, std_K = band([[0.4, 0.3, 0.2], [0.6, 0.3, 0.4]])
    assert mean_K == pytest.approx([0.5, 0.3, 0.3])
    assert std_K == pytest.approx([math.sqrt(0.02), 0.0, math.sqrt(0.02)])
    with pytest.raises(ValueError, match="different lengths"):
        band([[0.4, 0.3], [0.4, 0.3, 0.2]])


def test_paired_difference_wins_and_t() -> None:
    a = [0.30, 0.28, 0.35, 0.40]
    b = [0.32, 0.31, 0.34, 0.44]
    result = paired(a, b)
    # diffs -0.02 -0.03 +0.01 -0.04: mean -0.02, sample std sqrt(0.0014 / 3)
    std = math.sqrt(((0.0) ** 2 + 0.01**2 + 0.03**2 + 0.02**2) / 3)
    assert result.n == 4 and result.wins_a == 3
    assert result.mean_diff == pytest.approx(-0.02)
    assert result.std_diff == pytest.approx(std)
    assert result.t == pytest.approx(-0.02 / (std / 2))
    assert 0.05 < result.p < 0.5  # t = -1.87 with 3 degrees of freedom: p ~ 0.16
    higher = paired(a, b, lower_is_better=False)  # for delta1, a win is a larger value
    assert higher.wins_a == 1 and higher.mean_diff == result.mean_diff


def test_paired_degenerate_cases() -> None:
    same = paired([0.5, 0.75], [0.25, 0.5])  # every difference equal: no test possible
    assert same.mean_diff == 0.25 and same.wins_a == 0 and math.isnan(same.p)
    assert math.isnan(paired([0.3], [0.2]).p)
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired([0.3, 0.2], [0.1])


def test_grid_is_the_cartesian_product(params_file: Path) -> None:
    points = parse_grid(["train.lr=1e-3,3e-3", "train.schedule=cosine, step"], params_file)
    assert points == [  # typed: 1e-3 is a float (a string to YAML 1.1), cosine a string
        {"train.lr": 0.001, "train.schedule": "cosine"},
        {"train.lr": 0.001, "train.schedule": "step"},
        {"train.lr": 0.003, "train.schedule": "cosine"},
        {"train.lr": 0.003, "train.schedule": "step"},
    ]
    assert parse_sets(["train.steps=2000"], params_file) == {"train.steps": 2000}


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["train.lr"], "expected section.key=value"),
        (["=1,2"], "expected section.key=value"),
        (["train.lr="], "empty value for 'train.lr'"),
        (["train.lr=1,,2"], "empty value for 'train.lr'"),
        (["train.lr=1,1"], "repeated value"),
        (["train.lrr=1,2"], "params.yaml: override rejected: unknown key train.lrr"),
        (["train.steps=100,1.5"], "train.steps: expected an integer, got 1.5"),
        (["nosuch.x=1"], "unknown params section 'nosuch'"),
        (["train=1,2"], "override 'train': expected 'section.key'"),
        (["train.lr=1", "train.lr=2"], "key given twice in the grid: train.lr"),
        ([], "empty grid"),
    ],
)
def test_bad_grid_names_the_problem(params_file: Path, specs: list[str], message: str) -> None:
    with pytest.raises(GridError, match=message):
        parse_grid(specs, params_file)


def test_set_takes_one_value(params_file: Path) -> None:
    with pytest.raises(GridError, match="one value only"):
        parse_sets(["train.steps=1,2"], params_file)


def test_seed_image_ci_hand_made_cases() -> None:
    import numpy as np

    from bench.learning.study_stats import seed_image_ci

    rng = np.random.default_rng(0)
    b = rng.uniform(0.2, 0.4, size=(3, 48))
    better = seed_image_ci(b - 0.05, b)  # a better by 0.05 on every seed and image
    assert better.diff == pytest.approx(-0.05) and better.hi < 0 and better.verdict() == "a"
    assert (better.seeds, better.images) == (3, 48)
    # one seed much better, two worse: the image bootstrap alone would call seed 0 a win,
    # the seed level makes the pooled result a tie
    a = b.copy()
    a[0] -= 0.2
    a[1:] += 0.08
    mixed = seed_image_ci(a, b)
    assert mixed.lo < 0 < mixed.hi and mixed.verdict() == "tie"
    assert seed_image_ci(b, b - 0.05).verdict() == "b"
    # delta1: higher is better
    assert seed_image_ci(b + 0.05, b).verdict(lower_is_better=False) == "a"
    with pytest.raises(ValueError, match="equal"):
        seed_image_ci(b, b[:2])
