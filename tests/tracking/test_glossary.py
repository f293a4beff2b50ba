"""Metric names for the UI: glossary coverage, counts as params, provenance hashes, tag budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from depthcore.evaluation.metrics import METRICS
from depthcore.run_logger import scale_metric_name
from depthcore.tracking.describe import MAX_TAGS, Standing, curated_tags, data_version
from depthcore.tracking.glossary import (
    GLOSSARY,
    eval_metrics_and_params,
    glossary_markdown,
    headline_metrics,
)

GLOSSARY_PAGE = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"


def test_every_metric_is_explained_and_the_docs_show_the_same_glossary() -> None:
    assert set(GLOSSARY) == set(METRICS)  # a new metric needs a name and a meaning first
    assert glossary_markdown() in GLOSSARY_PAGE.read_text()
    assert "| `plane_flatness_err_cm` | ↓ |" in glossary_markdown()
    assert "| `delta1_within_1.25` | ↑ |" in glossary_markdown()


def test_eval_metrics_get_glossary_names_and_counts_become_params() -> None:
    metrics = {"ibims": {"lsq": {"abs_rel": 0.2, "pe_fla": 3.0, "num_images": 48.0}}}
    logged, params = eval_metrics_and_params(metrics)
    assert logged == {"ibims/lsq/abs_rel": 0.2, "ibims/lsq/plane_flatness_err_cm": 3.0}
    assert params == {"ibims.num_images": "48"}
    with pytest.raises(KeyError, match="'mystery' of ibims/lsq has no glossary entry"):
        eval_metrics_and_params({"ibims": {"lsq": {"mystery": 1.0}}})
    assert scale_metric_name("val_abs_rel", 8) == "val_abs_rel_scale_8x8"
    both = {"a": {"lsq": {"abs_rel": 0.2, "delta1": 0.5}}, "b": {"lsq": {"abs_rel": 0.4}}}
    assert headline_metrics(both, "lsq") == pytest.approx({"mean_abs_rel": 0.3, "mean_delta1": 0.5})


def test_data_version_hashes_only_the_data_deps(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"

    def write(code_md5: str, data_md5: str) -> None:
        lock.write_text(
            "schema: '2.0'\nstages:\n  train@depthart:\n    deps:\n"
            f"    - path: stages/train.py\n      md5: {code_md5}\n"
            f"    - path: data/features\n      md5: {data_md5}.dir\n"
        )

    write("aaa", "111")
    first = data_version(lock, "train@depthart")
    write("bbb", "111")  # a code change is not a data change
    assert data_version(lock, "train@depthart") == first and len(first) == 12
    write("bbb", "222")
    assert data_version(lock, "train@depthart") != first
    assert data_version(lock, "train@var_tf") == "unknown"
    assert data_version(tmp_path / "missing.lock", "train@depthart") == "unknown"


def test_curated_tags_stay_within_the_budget() -> None:
    standing = Standing("depthart-tiny/v1", "depthart", 1.5, 4, {"mean_abs_rel": 0.2})
    kw = {"checkpoint_sha256": "f" * 64, "git_commit": "0" * 40 + "+dirty",
          "params_hash": "p" * 12, "data_version": "d" * 12, "champion": True}  # fmt: skip
    tags = curated_tags(standing, **kw)
    assert tags["git_commit"] == "000000000000+dirty" and tags["rank"] == "1.500"
    assert len(tags) <= MAX_TAGS
    many = Standing("x/v1", "x", 1.0, 2, {f"m{i}": 0.0 for i in range(5)})
    with pytest.raises(ValueError, match="13 tags exceed the 12 a version page shows"):
        curated_tags(many, **kw)
