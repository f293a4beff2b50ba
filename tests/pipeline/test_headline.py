"""Readable comparisons: the headline metrics files and the per-scale plot, read by real DVC."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from depthcore.tracking.headline import headline_row, write_headline

ROOT = Path(__file__).resolve().parents[2]


def _metrics(abs_rel: float) -> dict:
    per = {"abs_rel": abs_rel, "delta1": 1 - abs_rel, "rmse": 9.0, "num_images": 8}
    return {b: {"lsq": per, "median": {**per, "abs_rel": 5.0}} for b in ("nyu", "tum")}


def _dvc(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_headline_row_keeps_rank_and_ranked_metrics_of_one_alignment() -> None:
    row = headline_row(1.23456, _metrics(0.1), "lsq", ("abs_rel", "delta1"))
    assert row == {
        "rank": 1.2346, "nyu_abs_rel": 0.1, "nyu_delta1": 0.9, "tum_abs_rel": 0.1,
        "tum_delta1": 0.9,
    }  # fmt: skip


def test_dvc_metrics_show_reads_one_row_per_candidate(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _dvc(repo, "init", "--no-scm", "-q")
    rows = {
        "depthart": {
            **headline_row(1.5, _metrics(0.1), "lsq", ("abs_rel", "delta1")),
            "version": 3,
        },
        "var_tf": {**headline_row(2.5, _metrics(0.2), "lsq", ("abs_rel", "delta1")), "version": 4},
    }
    write_headline(repo / "outputs" / "register", rows)
    stage = {"cmd": "true", "metrics": [{"outputs/register/headline": {"cache": False}}]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"register": stage}}))
    table = _dvc(repo, "metrics", "show", "--md", "outputs/register/headline")
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert len(lines) == 4  # header, rule, one row per candidate
    header = [cell.strip() for cell in lines[0].split("|")[1:-1]]
    assert header == [
        "Path", "nyu_abs_rel", "nyu_delta1", "rank", "tum_abs_rel", "tum_delta1", "version",
    ]  # fmt: skip
    assert "headline/depthart.json" in lines[2] and "1.5" in lines[2]


def test_per_scale_plot_draws_both_objectives_on_one_chart(tmp_path: Path) -> None:
    """The top-level ``plots`` of the project's dvc.yaml, on two scales.csv files."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _dvc(repo, "init", "--no-scm", "-q")
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}))
    for i, objective in enumerate(("depthart", "var_tf")):
        rows = ["scale,patch_num,tokens,abs_rel"]
        rows += [
            f"{k + 1},{pn},{pn * pn},{0.5 / (k + 1) + 0.1 * i}" for k, pn in enumerate((1, 2, 3))
        ]  # noqa: E501
        (repo / "models" / objective).mkdir(parents=True)
        (repo / "models" / objective / "scales.csv").write_text("\n".join(rows) + "\n")
        for decoding in ("greedy", "sample", "expected"):  # the exposure gap, per decoding
            folder = repo / "models" / objective / "exposure"
            folder.mkdir(exist_ok=True)
            (folder / f"{decoding}.csv").write_text(
                "scale,patch_num,loss_gap,abs_rel_gap\n0,1,0.0,0.0\n1,2,0.1,0.01\n"
            )
    shown = json.loads(_dvc(repo, "plots", "show", "--json"))["data"]
    assert list(shown) == ["per-scale AbsRel", "exposure gap (AbsRel)", "exposure gap (loss)"]
    (chart,) = shown["per-scale AbsRel"]  # one chart ...
    values = chart["content"]["data"]["values"]
    curves = {v["filename"] for v in values}
    assert curves == {"depthart/scales.csv", "var_tf/scales.csv"}  # ... with both curves
    assert len(values) == 6 and chart["content"]["encoding"]["x"]["field"] == "scale"
    for name in ("exposure gap (AbsRel)", "exposure gap (loss)"):
        (chart,) = shown[name]  # both objectives x three decodings on one chart
        assert len({v["filename"] for v in chart["content"]["data"]["values"]}) == 6, name
