"""The study's and the sweep's markdown, from synthetic experiments (no DVC, fast)."""

from __future__ import annotations

from typing import Any

from bench.learning.dvc_exp import Experiment
from bench.learning.study import render
from bench.learning.sweep import sweep_table

BENCHES = ("eth3d", "ibims", "nyu", "tum")


def _record(seed: int, depthart: float, var_tf: float) -> dict[str, Any]:
    """One seed: every benchmark scores ``depthart`` / ``var_tf`` (delta1 = 1 - AbsRel)."""

    def obj(abs_rel: float) -> dict[str, Any]:
        return {
            "eval": {b: {"abs_rel": abs_rel, "delta1": 1 - abs_rel} for b in BENCHES},
            "patch_nums": [1, 2, 4],
            "scales_abs_rel": [0.4, 0.35, abs_rel],
            "val_first": 0.4,
            "val_last": abs_rel,
            "ablation": {"abs_rel_real": abs_rel, "abs_rel_zero": 0.5, "abs_rel_other": 0.45,
                         "pred_spread": 0.1},
        }  # fmt: skip

    return {"seed": seed, "experiment": f"study-seed{seed}", "rev": "0" * 40,
            "objectives": {"depthart": obj(depthart), "var_tf": obj(var_tf)}}  # fmt: skip


def test_study_markdown_aggregates_over_seeds() -> None:
    records = [_record(0, 0.30, 0.32), _record(1, 0.32, 0.36), _record(2, 0.34, 0.34)]
    meta = {"command": "study", "commit": "abc", "overrides": "", "wall": "1 min", "date": "d"}
    text = render(records, ["depthart", "var_tf"], meta)
    # DepthART AbsRel 0.30 / 0.32 / 0.34: mean 0.32, std 0.02; VAR-TF 0.32 / 0.36 / 0.34
    assert "| eth3d | 0.320 ± 0.020 | 0.340 ± 0.020 | 0.680 ± 0.020 | 0.660 ± 0.020 |" in text
    # diffs -0.02 / -0.04 / 0.00 per benchmark: mean -0.02, std 0.02; DepthART wins 2 of 3
    assert "| abs_rel | tum | 3 | -0.0200 ± 0.0200 | 2/3 |" in text
    assert "| abs_rel | all | 12 | -0.0200 ±" in text and "| 8/12 |" in text
    assert "| delta1 | all | 12 | 0.0200 ±" in text  # delta1 higher is better: same 8 wins
    # per-scale: the last scale is each seed's val_last; drop (0.4 - x) / 0.4 in percent
    assert "| DepthART | 0.400 ± 0.000 | 0.350 ± 0.000 | 0.320 ± 0.020 | 20.0 ± 5.0 % |" in text
    assert "| VAR-TF | 0.340 ± 0.020 | 0.500 ± 0.000 | 0.450 ± 0.000 | 0.100 ± 0.000 |" in text
    assert text.count("| 1 | DepthART |") == 1 and "study-seed2" in text


def test_sweep_table_rows_hold_params_and_metrics() -> None:
    metrics = {
        "outputs/eval/depthart/metrics.json": {b: {"lsq": {"abs_rel": 0.25}} for b in BENCHES},
        "models/depthart/scales.json": {"val_abs_rel_first_scale": 0.4, "val_abs_rel": 0.3},
    }
    exps = [Experiment("sweep-1", "a" * 40, {"train.lr": 0.001}, metrics),
            Experiment("sweep-2", "b" * 40, {"train.lr": 0.003}, metrics)]  # fmt: skip
    header, rows = sweep_table(exps, ["train.lr"], ["depthart"])
    assert header == ["experiment", "train.lr", "depthart eth3d", "depthart ibims",
                      "depthart nyu", "depthart tum", "depthart scale first",
                      "depthart scale last"]  # fmt: skip
    assert rows[1] == ["sweep-2", "0.003", "0.250", "0.250", "0.250", "0.250", "0.400", "0.300"]
