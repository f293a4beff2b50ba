"""SIGKILL the download and preprocess stages at a random point (seeded), rerun them:
the outputs equal an uninterrupted run's byte for byte and no temporary file remains.

Download is rerun as is (it resumes its ``.part`` files and verifies what is there);
preprocess is rerun the way ``dvc repro`` does it, after its outputs are deleted
(its atomic temporary folder is no DVC output: the rerun must clean it up itself).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.reliability.crash_runs import (
    download_sections,
    kill_and_rerun,
    members_written,
    preprocess_sections,
    reference_data_runs,
    temp_folder_exists,
    tree_digest,
)

SEEDS = (0, 1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The source, and uninterrupted download and preprocess runs."""
    source, work = reference_data_runs(tmp_path_factory.mktemp("kill_reference"))
    raw = work / "data/raw"
    return {
        "source": source,
        "raw": raw,
        "download": tree_digest(raw),
        "preprocess": tree_digest(work / "data/processed"),
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_download_killed_then_rerun(reference: dict, tmp_path: Path, seed: int) -> None:
    wanted = sum(1 for k in reference["download"] if k.endswith(".hdf5"))
    run = kill_and_rerun(
        "download", download_sections(reference["source"]), "data/raw", tmp_path,
        reference["download"], seed, members_written("data/raw", wanted), as_dvc=False,
        max_delay_s=0.0,
    )  # fmt: skip
    assert run.killed, "the stage finished before the kill: no crash was tested"
    assert run.equal and run.leftovers == []


@pytest.mark.parametrize("seed", SEEDS)
def test_preprocess_killed_then_rerun(reference: dict, tmp_path: Path, seed: int) -> None:
    run = kill_and_rerun(
        "preprocess", preprocess_sections(reference["raw"]), "data/processed", tmp_path,
        reference["preprocess"], seed, temp_folder_exists("data/processed"),
    )  # fmt: skip
    assert run.killed, "the stage finished before the kill: no crash was tested"
    assert run.equal and run.leftovers == []
