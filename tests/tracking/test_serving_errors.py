"""The serving endpoint's answers to bad requests: a 4xx with our message, and the
server still answers the next good request (MLflow's scoring function, in-process)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.helpers.checkpoints import random_rgb
from tests.helpers.reliability.bad_inputs import bomb_png
from tests.helpers.scoring import call, served_model


@pytest.fixture(scope="module")
def served(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Our pyfunc saved as an MLflow model folder and loaded back, as the server holds it."""
    return served_model(tiny_checkpoint, tmp_path_factory.mktemp("served"))


def _png_b64(path: Path | None = None, rgb: np.ndarray | None = None) -> str:
    if path is not None:
        return base64.b64encode(path.read_bytes()).decode()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _frame(cell: str, column: str = "image") -> str:
    """A ``dataframe_split`` request body of one cell."""
    return json.dumps({"dataframe_split": {"columns": [column], "data": [[cell]]}})


def _call(served: Any, body: str) -> tuple[int, str]:
    return call(served, body)


def test_bad_requests_get_400_with_our_message(served: Any, tmp_path: Path) -> None:
    bomb_png(tmp_path / "bomb.png")
    bad = {
        "malformed JSON": ('{"dataframe_split": ', ""),
        "not an image": (_frame(base64.b64encode(b"hello").decode()), "image 0: cannot read image"),
        "not base64": (_frame("%%%"), "image 0: not valid base64"),
        "oversized PNG": (_frame(_png_b64(tmp_path / "bomb.png")), "image 0: image too large"),
        "wrong column": (_frame("x", column="photo"), "needs an 'image' column"),
        "wrong shape": (json.dumps({"inputs": [[[1, 2], [3, 4]]]}), "expected an HxWx3 array"),
    }
    for label, (body, message) in bad.items():
        status, text = _call(served, body)
        assert 400 <= status < 500, (label, status, text)
        assert message in text, (label, text)
    good = _frame(_png_b64(rgb=random_rgb(9, 13)))
    status, text = _call(served, good)
    assert status == 200
    assert np.asarray(json.loads(text)["predictions"][0]).shape == (9, 13)


@pytest.mark.parametrize("shape", [(2, 2), (3, 4, 4)])
def test_array_inputs_of_the_wrong_shape(served: Any, shape: tuple[int, ...]) -> None:
    status, text = _call(served, json.dumps({"inputs": [np.zeros(shape).tolist()]}))
    assert status == 400 and "expected an HxWx3 array" in text
