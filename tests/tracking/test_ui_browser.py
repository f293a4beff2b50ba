"""The MLflow UI in a real browser: the product model page answers "who is champion, why".

Runs where the system Chromium (Debian package ``chromium``) and Playwright are
installed; skipped with the reason where they are not. The browser helpers (tests/helpers/ui.py)
are the screenshot script's too (``bench/screenshots/ui_screenshots.py``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from depthcore.tracking import registry
from depthcore.tracking.registry import RegisterConfig
from tests.helpers.net import free_port
from tests.helpers.registry import metrics_payload, new_model, references, tiny_pyfunc
from tests.helpers.ui import CHROMIUM, VIEWPORT, chromium, mlflow_ui, shoot

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.is_file() or importlib.util.find_spec("playwright") is None,
        reason=f"needs {CHROMIUM} (apt-get install chromium) and playwright (pip, dev extra)",
    ),
]


def test_model_page_shows_champion_and_reason_above_the_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.chdir(tmp_path)
    db = tmp_path / "mlflow.db"
    client = registry.connect(f"sqlite:///{db}")
    try:
        cfg = RegisterConfig(objectives=("depthart", "var_tf"))
        a = new_model(client, tmp_path, "depthart", "a", metrics_payload(0.30, 0.60))
        b = new_model(client, tmp_path, "var_tf", "b", metrics_payload(0.20, 0.70))
        result = registry.run_round(client, cfg, [a, b], references(tmp_path), tiny_pyfunc)
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    assert result.champion_after == "var-tf-tiny/v1"

    port = free_port()
    with mlflow_ui(db, port, tmp_path / "mlflow.log"), chromium() as page:
        url = f"http://127.0.0.1:{port}/#/models/depthart"
        shoot(page, url, tmp_path / "model.png", "Champion: var-tf-tiny/v1")
        headline = page.get_by_text("Champion: var-tf-tiny/v1").first.bounding_box()
        reason = page.get_by_text("is the first champion").first.bounding_box()
        # both visible without scrolling (the description comes before any tag list)
        assert headline is not None and headline["y"] + headline["height"] < VIEWPORT["height"]
        assert reason is not None and reason["y"] + reason["height"] < VIEWPORT["height"]
    assert (tmp_path / "model.png").stat().st_size > 10_000
