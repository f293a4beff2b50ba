"""The one drawing of the stage graph (docs/pipeline.md) is dvc.yaml's own `dvc dag --md`."""

from __future__ import annotations

from tests.helpers.docs_dag import documented_dag, dvc_dag_markdown


def test_docs_pipeline_graph_is_dvc_dag() -> None:
    assert documented_dag() == dvc_dag_markdown(), (
        "docs/pipeline.md's stage graph differs from `dvc dag --md`: "
        "run `python -m tests.helpers.docs_dag --write`"
    )
