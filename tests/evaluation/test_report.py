"""The generated results page: words follow the intervals, numbers come from files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depthcore.errors import DataError
from depthcore.evaluation.report import (
    BEGIN,
    END,
    head_to_head,
    replace_between_markers,
    results_section,
)


def _ci(mean_a: float, mean_b: float, lo: float, hi: float, verdict: str) -> dict:
    return {
        "mean_a": mean_a,
        "mean_b": mean_b,
        "diff": mean_a - mean_b,
        "lo": lo,
        "hi": hi,
        "n": 48,
        "verdict": verdict,
    }


PAIR = {
    "a": "depthart/v1",
    "b": "depthart/v2",
    "benchmarks": {
        "nyu": {
            "abs_rel": _ci(0.20, 0.25, -0.07, -0.03, "depthart/v1 better"),
            "delta1": _ci(0.60, 0.61, -0.03, 0.01, "no significant difference"),
        },
        "tum": {
            "abs_rel": _ci(0.30, 0.29, -0.01, 0.03, "no significant difference"),
            "delta1": _ci(0.40, 0.45, -0.08, -0.02, "depthart/v2 better"),
        },
    },
}
NAMES = {"depthart/v1": "depthart", "depthart/v2": "var_tf"}


def test_wording_counts_only_significant_differences() -> None:
    text = head_to_head(PAIR, NAMES, 0.95)
    assert text.startswith(
        "depthart vs var_tf: depthart significantly better on 1, var_tf on 1, no significant "
        "difference on 2 of the 4 (benchmark, metric) pairs"
    )
    assert "| nyu | AbsRel | 0.2000 | 0.2500 | -0.0500 | [-0.0700, -0.0300] | 48 |" in text
    assert "| tum | AbsRel |" in text and text.count("no significant difference |") == 2
    tie = {
        "a": "x",
        "b": "y",
        "benchmarks": {"nyu": {"abs_rel": _ci(0.2, 0.2, -0.01, 0.01, "no significant difference")}},
    }
    assert head_to_head(tie, {}, 0.95).startswith(
        "x vs y: no significant difference on any of the 1 (benchmark, metric) pairs"
    )


def _outputs(root: Path) -> tuple[Path, Path]:
    reg, models = root / "outputs" / "register", root / "models"
    reg.mkdir(parents=True)
    (reg / "rank_table.md").write_text("| candidate | rank |\n|---|---|\n| depthart/v1 | 1.250 |\n")
    registry = {
        "registered_model": "depthart",
        "new_versions": {"depthart": "depthart/v1", "var_tf": "depthart/v2"},
        "reason": "depthart/v1 (rank 1.250) is the first champion",
    }
    (reg / "registry.json").write_text(json.dumps(registry))
    comparison = {"alignment": "lsq", "level": 0.95, "resamples": 2000, "seed": 0, "pairs": [PAIR]}
    (reg / "comparison.json").write_text(json.dumps(comparison))
    for objective, values in (("depthart", (0.4, 0.3)), ("var_tf", (0.4, 0.35))):
        (models / objective).mkdir(parents=True)
        rows = ["scale,patch_num,tokens,abs_rel"] + [
            f"{k},{pn},{pn * pn},{v}" for k, (pn, v) in enumerate(zip((1, 2), values, strict=True))
        ]
        (models / objective / "scales.csv").write_text("\n".join(rows) + "\n")
    return reg, models


def test_results_section_from_the_outputs(tmp_path: Path) -> None:
    reg, models = _outputs(tmp_path)
    section = results_section(reg, models, ("depthart", "var_tf"))
    assert "| depthart/v1 | 1.250 |" in section
    assert "Champion decision: depthart/v1 (rank 1.250) is the first champion." in section
    assert "### depthart vs var_tf: paired bootstrap intervals" in section
    assert "| 2 | 0.3000 | 0.3500 |" in section  # the per-scale curve
    readme = f"# title\n\nintro\n{BEGIN}\nold numbers\n{END}\n\nrest\n"
    updated = replace_between_markers(readme, section)
    assert "old numbers" not in updated and updated.endswith(f"{END}\n\nrest\n")
    assert replace_between_markers(updated, section) == updated  # idempotent
    with pytest.raises(DataError, match="markers"):
        replace_between_markers("# no markers\n", section)
    (reg / "registry.json").unlink()
    with pytest.raises(DataError, match="registry.json: not found"):
        results_section(reg, models, ("depthart", "var_tf"))


def test_report_stage_updates_the_readme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stages.report import main

    _outputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("report:\n  objectives: [depthart, var_tf]\n")
    (tmp_path / "results.md").write_text(f"x\n{BEGIN}\n{END}\n")
    main(["--params", "params.yaml", "--page", "results.md"])
    written = (tmp_path / "outputs" / "report" / "results.md").read_text()
    assert written in (tmp_path / "results.md").read_text()
    assert "depthart significantly better on 1" in written
