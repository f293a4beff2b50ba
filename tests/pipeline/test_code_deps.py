"""Editing a metric or a figure module never marks a training stage as changed in DVC.

A copy of the repository gets placeholder outputs for every stage and a
``dvc commit`` that records them in ``dvc.lock`` (no stage runs: seconds, not the
pipeline's minutes); then a comment is appended to a metric module and to the figure
module, and ``dvc status`` must list the evaluation stages but no tokenizer or training.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.dvc_copy import committed_copy as make_committed_copy
from tests.helpers.dvc_copy import dvc_status

TRAINING = {
    "tokenizer", "features", "pretrain", "train@depthart", "train@var_tf", "train@regression",
}  # fmt: skip


@pytest.fixture(scope="module")
def committed_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_committed_copy(tmp_path_factory.mktemp("deps") / "repo")


def _changed_after_edit(repo: Path, module: str) -> set[str]:
    path = repo / module
    original = path.read_text()
    path.write_text(original + "\n# an innocent comment\n")
    try:
        return set(dvc_status(repo))
    finally:
        path.write_text(original)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("module", "must_change"),
    [
        ("depthcore/evaluation/planarity.py", {"evaluate@depthart", "evaluate@var_tf"}),
        ("depthcore/evaluation/metrics.py", {"tokenizer_eval", "scales@depthart", "register"}),
        ("depthcore/viz.py", {"scales@depthart", "scales@var_tf"}),
    ],
)
def test_metric_and_plot_edits_leave_training_clean(
    committed_copy: Path, module: str, must_change: set[str]
) -> None:
    changed = _changed_after_edit(committed_copy, module)
    assert must_change <= changed, f"{module}: expected {must_change} to rerun, got {changed}"
    assert not changed & TRAINING, f"{module} would retrain: {sorted(changed & TRAINING)}"


@pytest.mark.integration
def test_a_model_edit_does_retrain(committed_copy: Path) -> None:
    """The check above is not vacuous: editing the transformer marks both trainings."""
    changed = _changed_after_edit(committed_copy, "depthcore/models/var.py")
    assert {"train@depthart", "train@var_tf"} <= changed
