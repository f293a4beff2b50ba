"""Serving and predict limits: refused with a 4xx (or one line) before the work starts.

The served model (MLflow's own scoring function, in-process, as in
tests/tracking/test_serving_errors.py): too many images or pixels per request, NaN /
Infinity pixels and malformed arrays get a 400 naming the problem, and a request whose
time budget is spent stops with a 504 instead of computing on. ``depthart predict``
refuses a photo over ``--max-pixels`` from its header; the colour map of a large
map is computed in blocks (no full-size float64 / RGBA copies).
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from depthcore import viz
from depthcore.cli import main as depthart
from depthcore.tracking.pyfunc import MAX_IMAGES
from tests.helpers.checkpoints import random_rgb
from tests.helpers.scoring import call, served_model


@pytest.fixture(scope="module")
def served(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Our pyfunc saved as an MLflow model folder and loaded back, as the server holds it."""
    return served_model(tiny_checkpoint, tmp_path_factory.mktemp("served_limits"))


def _call(served: Any, body: str) -> tuple[int, str]:
    return call(served, body)


def _inputs(n: int, size: int = 8) -> str:
    return json.dumps({"inputs": [random_rgb(size, size, seed=i).tolist() for i in range(n)]})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (json.dumps({"inputs": [[[[float("nan"), 0, 0]] * 4] * 4]}), "must be finite"),
        ('{"inputs": [[[[Infinity, 0, 0], [0, 0, 0]]]]}', "must be finite"),
        ('{"inputs": [[[[1e400, 0, 0]]]]}', "must be finite"),
        ('{"dataframe_records": [{"image": [[[1, 2, 3], [1, 2]]]}]}', "image 0: not an HxWx3"),
        ('{"inputs": "abc"}', "expected a list of images"),
        ('{"dataframe_records": [{"image": {"a": 1}}]}', "expected an HxWx3 array"),
    ],
)
def test_bad_payloads_get_400(served: Any, body: str, message: str) -> None:
    status, text = _call(served, body)
    assert status == 400 and message in text, (status, text[-300:])


def test_batch_and_pixel_limits_answer_400_first(served: Any, monkeypatch) -> None:
    status, text = _call(served, _inputs(MAX_IMAGES + 1, size=2))
    assert status == 400 and f"{MAX_IMAGES + 1} images in one request; the limit is" in text
    monkeypatch.setenv("DEPTHART_SERVE_MAX_PIXELS", "100")
    status, text = _call(served, _inputs(2))  # 2 x 64 pixels
    assert status == 400 and "128 pixels; the limit per request is 100" in text
    monkeypatch.setenv("DEPTHART_SERVE_MAX_PIXELS", "lots")
    status, text = _call(served, _inputs(1))
    assert status == 400 and "DEPTHART_SERVE_MAX_PIXELS='lots'" in text
    monkeypatch.delenv("DEPTHART_SERVE_MAX_PIXELS")
    status, text = _call(served, _inputs(2))
    assert status == 200 and len(json.loads(text)["predictions"]) == 2


def test_request_time_budget_stops_the_work(served: Any, monkeypatch) -> None:
    monkeypatch.setenv("DEPTHART_SERVE_MAX_SECONDS", "1e-9")
    status, text = _call(served, _inputs(6))  # two chunks: the second is never started
    assert status == 504 and "request stopped after 1e-09 s with 4 of 6 images done" in text


def test_predict_pixel_cap(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    Image.fromarray(np.full((1000, 1500, 3), 90, np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(random_rgb(16, 16)).save(tmp_path / "small.png")
    argv = ["predict", str(tmp_path / "big.png"), str(tmp_path / "small.png"), "-q"]
    argv += ["-o", str(tmp_path / "out"), "--device", "cpu", "--model", str(tiny_checkpoint)]
    argv += ["--outputs", "npy"]
    code = depthart([*argv, "--max-pixels", "1e6"])
    err = capsys.readouterr().err
    assert (
        code == 1
        and "big.png: 1500x1000 = 1.5 Mpx is over the limit of 1 Mpx (--max-pixels)" in err
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small_depth.npy"]
    code = depthart([*argv, "--max-pixels", "2e6"])
    assert code == 0 and (tmp_path / "out" / "big_depth.npy").is_file()


def test_colour_map_memory_is_bounded() -> None:
    """About 10 bytes a pixel at 4 Mpx (it was ~50: float64 copies and a float64 RGBA)."""
    depth_HW = np.random.default_rng(0).random((2000, 2000), dtype=np.float32) + 0.5
    tracemalloc.start()
    try:
        rgb_HW3 = viz.colorize(depth_HW)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rgb_HW3.shape == (2000, 2000, 3) and peak / depth_HW.size < 16, peak / depth_HW.size
