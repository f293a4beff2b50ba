"""Inputs a user can plausibly give that used to end in "unexpected XError": each now
names the file, key or option and the problem, through the real entry point.

- a file that is not a checkpoint (random bytes, a photo) where a tokenizer or model
  checkpoint is expected: torch's weights-only unpickler fails on such bytes with a
  bare ``KeyError`` / ``IndexError``;
- an ``evaluate.benchmarks.<name>`` crop or split the reader refuses, or one it does
  not take at all (``crop`` on TUM);
- ``depthart align --space`` with a space no model predicts in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from depthcore.cli import main as depthart
from stages.evaluate import main as evaluate_main
from stages.features import main as features_main

#: bytes on which torch.load(weights_only=True) raised KeyError (the first) and
#: IndexError (the second) before the checkpoint reader named the file
NOT_CHECKPOINTS = [b"hello world" * 10, b"\x80\x02."]


def _stage_error(main, params: Path, argv: list[str], capsys) -> str:  # noqa: ANN001
    with pytest.raises(SystemExit) as info:
        main(["--params", str(params), *argv])
    err = capsys.readouterr().err
    assert info.value.code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "unexpected" not in err and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("data", NOT_CHECKPOINTS, ids=["keyerror", "indexerror"])
def test_a_file_that_is_not_a_checkpoint_is_named(
    processed_dir: Path, tmp_path: Path, data: bytes, capsys
) -> None:
    bogus = tmp_path / "vae.pth"
    bogus.write_bytes(data)
    section = {"data_dir": str(processed_dir), "tokenizer": str(bogus), "out_dir": str(tmp_path)}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"features": section}))
    line = _stage_error(features_main, tmp_path / "params.yaml", [], capsys)
    assert f"{bogus}: not a readable torch checkpoint" in line, line


@pytest.mark.parametrize(
    ("bench", "message"),
    [
        ({"nyu": {"crop": "weird"}}, "evaluate.benchmarks.nyu: nyu crop must be border8"),
        ({"nyu": {"split": "val"}}, "evaluate.benchmarks.nyu: nyu split must be test or train"),
        (
            {"tum": {"crop": "eigen"}},
            "evaluate.benchmarks.tum: the tum reader takes no such option (given: crop)",
        ),
        (
            {"eth3d": {"split": "val"}},
            "evaluate.benchmarks.eth3d: the eth3d reader takes no such option (given: split)",
        ),
    ],
)
def test_benchmark_options_name_the_key(tmp_path: Path, bench: dict, message: str, capsys) -> None:
    (tmp_path / "bench").mkdir()
    benchmarks = {name: {"root": str(tmp_path / "bench"), **opts} for name, opts in bench.items()}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"evaluate": {"benchmarks": benchmarks}}))
    argv = ["--model", "reference:constant_plane", "--out", str(tmp_path / "out")]
    line = _stage_error(evaluate_main, tmp_path / "params.yaml", argv, capsys)
    assert message in line, line
    assert not (tmp_path / "out").exists()


def test_align_space_is_a_choice(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "d.npy", np.ones((4, 4), np.float32))
    (tmp_path / "p.csv").write_text("x,y,depth\n0,0,1\n1,1,2\n")
    argv = ["align", str(tmp_path / "d.npy"), "--points", str(tmp_path / "p.csv")]
    with pytest.raises(SystemExit) as info:
        depthart([*argv, "-o", str(tmp_path / "m.npy"), "--space", "metres"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "argument --space: invalid choice: 'metres'" in err, err
    assert "unexpected" not in err and not (tmp_path / "m.npy").exists()
