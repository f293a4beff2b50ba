"""dvc.lock reading: libyaml's parser gives the pure-Python parser's mapping, and bad files
are errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from depthcore.errors import DataError
from depthcore.run_inputs import read_lock

LOCK = """schema: '2.0'
stages:
  train@depthart:
    cmd: python -m stages.train --params params.yaml --objective depthart
    deps:
    - path: data/features
      hash: md5
      md5: 0f3c1a2b9d8e7f6a5b4c3d2e1f0a9b8c.dir
      size: 1048576
      nfiles: 2
    - path: stages/train.py
      hash: md5
      md5: 1234567890abcdef1234567890abcdef
      size: 2048
    params:
      params.yaml:
        train:
          steps: 1200
          lr: 0.0003
          schedule: cosine
          decoding: expected
          teacher_forcing_steps: 0
          resume: true
          note: null
          ratios: [0.5, 1.0e-05, .inf]
    outs:
    - path: models/depthart
      hash: md5
      md5: aa55aa55aa55aa55aa55aa55aa55aa55.dir
      size: 7340032
      nfiles: 5
"""


def test_lock_reads_as_the_pure_python_parser_reads_it(tmp_path: Path) -> None:
    (tmp_path / "dvc.lock").write_text(LOCK)
    stages = read_lock(tmp_path / "dvc.lock")
    assert stages == yaml.safe_load(LOCK)["stages"]
    assert stages["train@depthart"]["params"]["params.yaml"]["train"]["ratios"][2] == float("inf")


@pytest.mark.parametrize(
    ("text", "problem"),
    [("stages: [unclosed\n", "not valid YAML"), ("- a\n- b\n", "no 'stages' mapping")],
)
def test_bad_lock_names_the_file(tmp_path: Path, text: str, problem: str) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(text)
    with pytest.raises(DataError, match=problem) as info:
        read_lock(lock)
    assert str(lock) in str(info.value)


def test_no_lock_is_an_empty_mapping(tmp_path: Path) -> None:
    assert read_lock(tmp_path / "dvc.lock") == {}
