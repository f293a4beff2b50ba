"""The study's and the sweep's markdown, from synthetic experiments (no DVC, fast)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import numpy as np
import pytest

import bench.learning.dvc_exp as dvc_exp
from bench.learning.dvc_exp import Experiment
from bench.learning.study import plan
from bench.learning.study_report import answer, render
from bench.learning.sweep import sweep_table

BENCHES = ("eth3d", "ibims", "nyu", "tum")
META = {"command": "study", "commit": "abc", "overrides": "", "wall": "1 min", "date": "d"}


def _obj(abs_rel_N: np.ndarray, gap: float) -> dict[str, Any]:
    """One objective of one run: every benchmark scores the images ``abs_rel_N``."""
    per_image = {
        b: {
            f"img{i}": {"abs_rel": float(v), "delta1": float(1 - v)}
            for i, v in enumerate(abs_rel_N)
        }
        for b in BENCHES
    }
    mean = float(abs_rel_N.mean())
    exposure = {"abs_rel_teacher_forced": [0.4, mean], "abs_rel_own": [0.4, mean + gap],
                "abs_rel_gap": [0.0, gap], "loss_gap": [0.0, 2 * gap]}  # fmt: skip
    return {
        "eval": {b: {"abs_rel": mean, "delta1": 1 - mean} for b in BENCHES},
        "per_image": per_image,
        "patch_nums": [1, 8],
        "scales_abs_rel": [0.4, mean],
        "val_first": 0.4,
        "val_last": mean,
        "ablation": {"abs_rel_real": mean, "abs_rel_zero": 0.5, "abs_rel_zero_prefix": 0.3},
        "exposure": {"sample": exposure},
    }


def _record(
    seed: int, variant: str, decoding: str, da_shift: float, steps: int = 400
) -> dict[str, Any]:
    images = np.random.default_rng(seed).uniform(0.2, 0.4, size=24)
    return {"experiment": f"study-{variant}-{decoding}-{seed}", "rev": "0" * 40, "seed": seed,
            "variant": variant, "decoding": decoding, "params": {"train.steps": steps},
            "objectives": {"depthart": _obj(images + da_shift, 0.01),
                           "var_tf": _obj(images, 0.04)}}  # fmt: skip


def test_study_markdown_and_answer_from_hand_made_runs() -> None:
    # DepthART 0.03 better on every image of every seed under sample decoding; under
    # expected decoding better on seed 0 only and worse on the other two: a tie
    records = [_record(s, "default", "sample", -0.03) for s in range(3)]
    records += [_record(s, "default", "expected", d) for s, d in ((0, -0.1), (1, 0.05), (2, 0.05))]
    records += [_record(s, "nopixel", "expected", 0.0) for s in range(2)]
    text = render(records, ["depthart", "var_tf"], META)
    lines = answer(records, ["depthart", "var_tf"], META)
    assert "`sample` decoding: DepthART significantly better on 4 of 4 benchmarks" in lines
    assert "`expected` decoding: DepthART significantly better on 0 of 4" in lines
    assert "DepthART +0.0100, VAR-TF +0.0400 (ratio 0.25)" in lines
    assert "Target (issue 24" in lines and ": met (wins met, gap met)" in lines
    assert lines in text
    sample_rows = [ln for ln in text.splitlines() if ln.startswith("| eth3d |")]
    assert "**DepthART better**" in sample_rows[1]  # sections sorted: expected, then sample
    assert "no significant difference" in sample_rows[0]
    # final-scale gap 0.01 vs 0.04; loss gap [0, 2 x gap] averaged over the two scales
    assert "| 0.0100 ± 0.0000 | 0.0100 ± 0.0000 |" in text
    assert "| 0.0400 ± 0.0000 | 0.0400 ± 0.0000 |" in text
    assert "no pixel path (`tiny-nopixel`) | 0 1 |" in text
    assert text.count("| study-default-sample-2 |") == 2  # one row per objective


def test_study_plan_seeds_the_warm_up_and_names_the_ablations() -> None:
    points = plan([0, 1, 2], ["nopixel"], 2, "study", "tiny")
    assert list(points) == ["study-seed0", "study-seed1", "study-seed2",
                            "study-nopixel-seed0", "study-nopixel-seed1"]  # fmt: skip
    assert points["study-seed1"]["overrides"] == {"train.seed": 1, "pretrain.seed": 1}
    assert points["study-nopixel-seed1"]["overrides"]["pretrain.model"] == "tiny-nopixel"
    assert points["study-nopixel-seed1"]["variant"] == "nopixel"


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


def test_write_answer_replaces_only_its_block(tmp_path) -> None:
    import pytest

    from bench.learning.dvc_exp import ExperimentError
    from bench.learning.study import ANSWER_BEGIN, ANSWER_END, write_answer

    page = tmp_path / "learning.md"
    page.write_text(f"# T\n\n{ANSWER_BEGIN}\nold\n{ANSWER_END}\n\nlog \\1 kept\n")
    write_answer(page, "new answer \\1")
    assert (
        page.read_text() == f"# T\n\n{ANSWER_BEGIN}\nnew answer \\1\n{ANSWER_END}\n\nlog \\1 kept\n"
    )
    page.write_text("# no block\n")
    with pytest.raises(ExperimentError, match="no <!-- study:answer -->"):
        write_answer(page, "x")


def test_trend_rows_follow_the_param_with_the_default_as_its_own_point() -> None:
    records = [_record(0, "default", "expected", 0.02), _record(1, "default", "expected", 0.0)]
    records += [_record(0, "trend", "expected", 0.05, steps=200),
                _record(0, "trend", "expected", -0.04, steps=800)]  # fmt: skip
    text = render(records, ["depthart", "var_tf"], {**META, "trend_key": "train.steps"})
    section = text.split("## Trend along `train.steps` (seed 0)")[1].splitlines()
    rows = [ln for ln in section if ln.split(" | ")[0] in ("| 200", "| 400", "| 800")]
    assert [r.split(" | ")[0] for r in rows] == ["| 200", "| 400", "| 800"]
    assert "| 0 / 4 / 0 |" in rows[0] and "| 4 / 0 / 0 |" in rows[2]
    assert "| +0.0100 / +0.0400 |" in rows[1]
    assert "## Trend" not in render(records, ["depthart", "var_tf"], META)


def test_cached_folder_is_rebuilt_from_its_manifest(tmp_path, monkeypatch) -> None:
    """The study evaluates on an experiment's own benchmark files, which only the DVC cache
    holds in a fresh clone (the experiments ran in temporary copies)."""
    cache = tmp_path / ".dvc/cache/files/md5"

    def put(md5: str, data: bytes) -> None:
        (cache / md5[:2]).mkdir(parents=True, exist_ok=True)
        (cache / md5[:2] / md5[2:]).write_bytes(data)

    put("11" * 16, b"depth")
    put("22" * 16, b"rgb")
    manifest = [{"md5": "11" * 16, "relpath": "nyu/a.png"}, {"md5": "22" * 16, "relpath": "b.txt"}]
    put("33" * 16 + ".dir", json.dumps(manifest).encode())
    exp = Experiment("study-seed0", "a" * 40, {}, {})
    locks = {("benchmarks", "data/benchmarks"): "33" * 16 + ".dir", ("train", "m"): "11" * 16}
    monkeypatch.setattr(dvc_exp, "cached_md5", lambda e, stage, path, repo: locks[stage, path])
    out = dvc_exp.restore_cached_dir(exp, "benchmarks", "data/benchmarks", tmp_path, tmp_path / "w")
    assert out == tmp_path / "w" / ("33" * 16)
    assert (out / "nyu/a.png").read_bytes() == b"depth" and (out / "b.txt").read_bytes() == b"rgb"
    assert (
        dvc_exp.restore_cached_dir(exp, "benchmarks", "data/benchmarks", tmp_path, tmp_path / "w")
        == out
    )
    with pytest.raises(dvc_exp.ExperimentError, match="not a folder"):
        dvc_exp.restore_cached_dir(exp, "train", "m", tmp_path, tmp_path / "w")
    (cache / "11" / ("11" * 15)).unlink()
    (tmp_path / "w2").mkdir()
    with pytest.raises(dvc_exp.ExperimentError, match="not in the DVC cache"):
        dvc_exp.restore_cached_dir(exp, "benchmarks", "data/benchmarks", tmp_path, tmp_path / "w2")
    assert not list((tmp_path / "w2").iterdir())  # no half-built folder left behind


def test_scales_json_is_read_whole_from_the_experiment_commit(tmp_path) -> None:
    """`dvc exp show` drops list values (the exposure gap's per-scale numbers): the study
    reads the committed file, and an experiment without the file is named."""
    scales = {"val_abs_rel": 0.2, "exposure_gap": {"sample": {"abs_rel_gap": [0.1, 0.2]}}}
    (tmp_path / "models/depthart").mkdir(parents=True)
    (tmp_path / "models/depthart/scales.json").write_text(json.dumps(scales))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "exp"], check=True)
    rev = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    shown = {"models/depthart/scales.json": {"val_abs_rel": 0.2}}  # as dvc exp show has it
    exp = Experiment("study-seed0", rev.strip(), {}, shown)
    assert dvc_exp.scales_committed(exp, "depthart", tmp_path) == scales
    with pytest.raises(dvc_exp.ExperimentError, match="study-seed0: no models/var_tf/scales"):
        dvc_exp.scales_committed(exp, "var_tf", tmp_path)
