"""CLI input expansion and pyfunc request decoding (no model needed)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from depthcore.cli import build_parser
from depthcore.errors import DataError
from depthcore.predict.inputs import expand_inputs
from depthcore.tracking.pyfunc import decode_images


def _touch_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(path)
    return path


def test_expand_folders_globs_and_missing(tmp_path) -> None:
    _touch_png(tmp_path / "a" / "x.png")
    _touch_png(tmp_path / "a" / "x.jpg")
    _touch_png(tmp_path / "a" / "sub" / "y.png")
    (tmp_path / "a" / "notes.txt").write_text("skip me")
    flat, failures = expand_inputs([str(tmp_path / "a")], recursive=False)
    assert failures == []
    # sorted: x.jpg keeps the plain stem, x.png is renamed by its extension
    assert [(j.source.name, str(j.stem)) for j in flat] == [("x.jpg", "x"), ("x.png", "x_png")]
    deep, _ = expand_inputs([str(tmp_path / "a")], recursive=True)
    assert Path("sub/y") in {j.stem for j in deep} and len(deep) == 3
    globbed, _ = expand_inputs([str(tmp_path / "a" / "*.png")], recursive=False)
    assert [j.source.name for j in globbed] == ["x.png"]
    _, failures = expand_inputs(
        [str(tmp_path / "nope.png"), str(tmp_path / "*.gif"), str(tmp_path / "a" / "sub" / "..")],
        recursive=False,
    )
    assert failures[0].endswith("nope.png: no such file or directory")
    assert "matches no files" in failures[1]
    assert len(failures) == 2


def test_parser_defaults() -> None:
    args = build_parser().parse_args(["predict", "img.png", "-o", "out"])
    assert args.outputs == "npy,png,color" and args.fov == 60.0 and args.samples == 0
    assert args.device == "auto" and args.model is None


def _b64_png(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def test_decode_images_every_request_form() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    forms = [
        pd.DataFrame({"image": [_b64_png(rgb)]}),
        pd.DataFrame({"image": [rgb.tolist()]}),
        rgb[None].copy(),
        {"image": [_b64_png(rgb)]},
        [_b64_png(rgb)],
    ]
    for form in forms:
        (out,) = decode_images(form)
        assert np.array_equal(out, rgb)


def test_decode_images_errors() -> None:
    with pytest.raises(DataError, match="'image' column"):
        decode_images(pd.DataFrame({"img": ["x"]}))
    with pytest.raises(DataError, match="image 0: not valid base64"):
        decode_images(pd.DataFrame({"image": ["***"]}))
    with pytest.raises(DataError, match="image 0: cannot read image"):
        decode_images(pd.DataFrame({"image": [base64.b64encode(b"junk").decode()]}))
    with pytest.raises(DataError, match=r"HxWx3"):
        decode_images(np.zeros((1, 4, 4), np.uint8))
