"""The champion rule on hand-made intervals: only evidence moves it, never a name.

Intervals are built by hand: each difference ``a - b`` of the means below gets the
interval ``diff +- half`` (``half`` sets what counts as significant), so every verdict
here can be checked with a pencil.
"""

from __future__ import annotations

import itertools

import pytest

from depthcore.evaluation.champion import (
    beats_references,
    beside_ranks,
    break_tie,
    decide_promotion,
    evidence_ranks,
    pair_cis,
)
from depthcore.evaluation.comparison import DiffCI
from depthcore.evaluation.ranking import rank_table

BENCHES = ("nyu", "ibims", "tum", "eth3d")
METRICS = ("abs_rel", "delta1")

# Today's case (issue 24): regression and VAR-TF tie at mean rank 1.750 by means;
# regression has the better mean AbsRel, VAR-TF the better mean delta1.
TODAY = {
    "regression": {"abs_rel": (0.10, 0.10, 0.10, 0.11), "delta1": (0.80, 0.80, 0.78, 0.80)},
    "var_tf": {"abs_rel": (0.11, 0.11, 0.13, 0.13), "delta1": (0.81, 0.81, 0.81, 0.81)},
    "depthart": {"abs_rel": (0.13, 0.13, 0.12, 0.10), "delta1": (0.70, 0.70, 0.79, 0.70)},
}
REFS = {
    "reference:constant_plane": {"abs_rel": (0.30,) * 4, "delta1": (0.40,) * 4},
    "reference:vertical_gradient": {"abs_rel": (0.25,) * 4, "delta1": (0.45,) * 4},
}


def _means(table: dict, names: dict[str, str] | None = None) -> dict:
    names = names or {k: k for k in table}
    return {
        names[k]: {b: {m: per[m][i] for m in METRICS} for i, b in enumerate(BENCHES)}
        for k, per in table.items()
    }


def _cis(means: dict, half: float) -> dict:
    """Every pair's interval: the difference of the means +- ``half``."""
    pairs = []
    for a, b in itertools.combinations(means, 2):
        per_bench = {}
        for bench in BENCHES:
            per_bench[bench] = {}
            for m in METRICS:
                ma, mb = means[a][bench][m], means[b][bench][m]
                d = ma - mb
                per_bench[bench][m] = DiffCI(ma, mb, d, d - half, d + half, 48)
        pairs.append({"a": a, "b": b, "benchmarks": per_bench})
    return pair_cis(pairs)


def _today(names: dict[str, str] | None = None, half: float = 0.005):
    means = _means(TODAY, names) | _means(REFS)
    return means, _cis(means, half)


def test_todays_tie_is_decided_by_the_bootstrap_not_the_alphabet() -> None:
    means, cis = _today()
    new = ["regression", "var_tf", "depthart"]
    # the old rule: plain mean ranks tie at 1.750, and min(label) picked "regression"
    plain = rank_table({k: means[k] for k in new}, METRICS)
    assert plain["regression"] == plain["var_tf"] == 1.75 and plain["depthart"] == 2.5
    # every difference here is 0.01 or more, outside the +-0.005 intervals: the same ranks
    ranks = evidence_ranks(new, BENCHES, METRICS, cis)
    assert ranks == plain
    # the bootstrap of AbsRel breaks the tie: regression is significantly better than
    # VAR-TF on 3 of 4 benchmarks, VAR-TF than regression on 1 of 4
    assert break_tie(["regression", "var_tf"], cis) == "regression"
    rule = decide_promotion(ranks, new, None, cis, list(REFS))
    assert rule.promote and rule.winner == "regression"
    assert "first champion" in rule.reason and "ahead of 1 tied" in rule.reason
    assert rule.significant == tuple(sorted(BENCHES))

    # rename so that the loser sorts first: the same model wins
    names = {"regression": "zz-regression", "var_tf": "aa-var-tf", "depthart": "depthart"}
    means, cis = _today(names)
    ranks = evidence_ranks(list(names.values()), BENCHES, METRICS, cis)
    assert ranks["zz-regression"] == ranks["aa-var-tf"]
    rule = decide_promotion(ranks, list(names.values()), None, cis, list(REFS))
    assert rule.winner == "zz-regression"


def test_a_tie_the_bootstrap_cannot_break_promotes_nobody() -> None:
    means, cis = _today(half=0.2)  # every difference inside its interval
    new = ["regression", "var_tf", "depthart"]
    ranks = evidence_ranks(new, BENCHES, METRICS, cis)
    assert ranks == {"regression": 2.0, "var_tf": 2.0, "depthart": 2.0}
    assert break_tie(new, cis) is None
    rule = decide_promotion(ranks, new, None, cis, list(REFS))
    assert not rule.promote and rule.winner is None and rule.challenger is None
    assert "puts none ahead" in rule.reason
    # two candidates each ahead of the other on half of the benchmarks: still no one
    means = _means(
        {
            "a": {"abs_rel": (0.1, 0.1, 0.2, 0.2), "delta1": (0.8,) * 4},
            "b": {"abs_rel": (0.2, 0.2, 0.1, 0.1), "delta1": (0.8,) * 4},
        }
    )
    assert break_tie(["a", "b"], _cis(means, 0.005)) is None


def test_differences_inside_the_interval_are_ties_in_the_rank() -> None:
    means = _means(
        {
            "a": {"abs_rel": (0.1000,) * 4, "delta1": (0.80,) * 4},
            "b": {"abs_rel": (0.1001,) * 4, "delta1": (0.80,) * 4},
        }
    )
    assert rank_table(means, METRICS) == {"a": 1.25, "b": 1.75}  # 0.0001 was a full rank
    ranks = evidence_ranks(["a", "b"], BENCHES, METRICS, _cis(means, 0.005))
    assert ranks == {"a": 1.5, "b": 1.5}
    # no interval at all (a pair without per-image metrics) is no evidence either
    assert evidence_ranks(["a", "b"], BENCHES, METRICS, {}) == {"a": 1.5, "b": 1.5}


def test_a_third_model_cannot_flip_the_pool() -> None:
    """Plain mean ranks: a and b tie until c slots in between them on one benchmark only."""
    table = {
        "a": {"abs_rel": (0.10, 0.30, 0.5, 0.5), "delta1": (0.5,) * 4},
        "b": {"abs_rel": (0.30, 0.10, 0.5, 0.5), "delta1": (0.5,) * 4},
        "c": {"abs_rel": (0.20, 0.40, 0.5, 0.5), "delta1": (0.5,) * 4},
    }
    means = _means(table)
    assert rank_table({k: means[k] for k in "ab"}, METRICS)["a"] == 1.5
    plain = rank_table(means, METRICS)
    assert plain["a"] < plain["b"]  # c flipped the tie by the old rule
    cis = _cis(means, 0.005)
    pool = evidence_ranks(["a", "b"], BENCHES, METRICS, cis)
    assert pool["a"] == pool["b"] == 1.5
    beside = beside_ranks(["a", "b"], ["c"], BENCHES, METRICS, cis)
    assert set(beside) == {"c"} and beside["c"] == pytest.approx(2.125)
    assert evidence_ranks(["a", "b"], BENCHES, METRICS, cis) == pool  # c moved nothing


def test_the_first_champion_must_beat_the_best_reference_on_half() -> None:
    means = _means(TODAY) | _means(REFS)
    # vertical_gradient (AbsRel 0.25) is the best reference everywhere; make it better than
    # depthart on three benchmarks
    for bench in ("nyu", "ibims", "tum"):
        means["reference:vertical_gradient"][bench]["abs_rel"] = 0.09
    cis = _cis(means, 0.005)
    wins, compared = beats_references("depthart", list(REFS), cis)
    assert wins == ["eth3d"] and compared == sorted(BENCHES)
    ranks = {"depthart": 1.0}
    rule = decide_promotion(ranks, ["depthart"], None, cis, list(REFS))
    assert not rule.promote and "1 of 4" in rule.reason and "at least half" in rule.reason
    # two of four (half) is enough
    means["reference:vertical_gradient"]["tum"]["abs_rel"] = 0.25
    rule = decide_promotion(ranks, ["depthart"], None, _cis(means, 0.005), list(REFS))
    assert rule.promote and rule.significant == ("eth3d", "tum")
    # no reference intervals at all: no evidence, no champion
    assert not decide_promotion(ranks, ["depthart"], None, {}, list(REFS)).promote


def test_a_tie_with_the_sitting_champion_keeps_it() -> None:
    means, cis = _today()
    pool = ["regression", "depthart", "var_tf"]  # var_tf is champion, the others are new
    ranks = evidence_ranks(pool, BENCHES, METRICS, cis)
    rule = decide_promotion(ranks, ["regression", "depthart"], "var_tf", cis, list(REFS))
    assert rule.challenger == "regression" and not rule.promote
    assert "a tie keeps the champion" in rule.reason
    # the champion registered again (same checkpoint) next to an equal new model: it stays
    rule = decide_promotion({"var_tf": 1.5, "x": 1.5}, ["var_tf", "x"], "var_tf", {}, [])
    assert not rule.promote and "already champion" in rule.reason


def test_promotion_needs_better_rank_and_significant_abs_rel() -> None:
    def vs(*highs: float) -> dict:
        """m/v2 - m/v1 AbsRel intervals ending at ``highs`` on four benchmarks."""
        per = {f"b{i}": {"abs_rel": DiffCI(0.2, 0.3, h - 0.01, h - 0.02, h, 48)}
               for i, h in enumerate(highs)}  # fmt: skip
        return pair_cis([{"a": "m/v2", "b": "m/v1", "benchmarks": per}])

    ranks = {"m/v1": 2.0, "m/v2": 1.5}
    win = decide_promotion(ranks, ["m/v2"], "m/v1", vs(-0.01, -0.02, 0.01, 0.02))
    assert win.promote and win.winner == "m/v2" and win.significant == ("b0", "b1")
    assert "significantly better on 2 of 4" in win.reason
    keep = decide_promotion(ranks, ["m/v2"], "m/v1", vs(-0.01, 0.01, 0.01, 0.02))
    assert not keep.promote and keep.winner is None and "at least half" in keep.reason
    worse = decide_promotion({"m/v1": 1.0, "m/v2": 2.0}, ["m/v2"], "m/v1", vs(-0.1, -0.1))
    assert not worse.promote and "(worse)" in worse.reason
    blind = decide_promotion(ranks, ["m/v2"], "m/v1", {})
    assert not blind.promote and "no per-image metrics" in blind.reason
    assert decide_promotion(ranks, [], "m/v1", {}).reason == "no new model this round"
    data = win.to_json()
    assert data["challenger_rank"] == 1.5 and data["champion_rank"] == 2.0
    assert data["compared"] == ["b0", "b1", "b2", "b3"]
