"""The timed repro's arithmetic, on hand-made logs and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.learning.repro_timing import margins, stage_seconds


def test_stage_seconds_run_from_one_start_to_the_next() -> None:
    events = [
        (0.0, "Running stage 'synth':\n"),
        (3.0, "> python -m stages.synth\n"),
        (10.0, "Running stage 'train@depthart':\n"),
        (11.0, "Updating lock file\n"),
    ]
    assert stage_seconds(events, end=25.5) == {"synth": 10.0, "train@depthart": 15.5}


def test_margins_against_the_best_reference_per_benchmark(tmp_path: Path) -> None:
    def write(name: str, values: dict[str, float]) -> None:
        (tmp_path / name).mkdir()
        data = {b: {"lsq": {"abs_rel": v}, "median": {"abs_rel": 9.0}} for b, v in values.items()}
        (tmp_path / name / "metrics.json").write_text(json.dumps(data))

    write("reference_constant_plane", {"nyu": 0.40, "tum": 0.30})
    write("reference_vertical_gradient", {"nyu": 0.32, "tum": 0.40})
    write("depthart", {"nyu": 0.24, "tum": 0.21})
    assert margins(tmp_path) == {"depthart": {"nyu": 25.0, "tum": 30.0}}
    for ref in tmp_path.glob("reference_*"):
        (ref / "metrics.json").unlink()
    with pytest.raises(SystemExit, match="no reference"):
        margins(tmp_path)
