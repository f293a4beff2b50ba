"""depthcore.png: every file is a PNG that PIL decodes to the same pixels and text."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from depthcore.png import FILTER_NONE, FILTER_UP, encode_png


def _images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "grey8": rng.integers(0, 256, (7, 5), dtype=np.uint8),
        "rgb8": rng.integers(0, 256, (6, 9, 3), dtype=np.uint8),
        "grey16": rng.integers(0, 65536, (5, 8), dtype=np.uint16),  # every byte matters
        "row16": rng.integers(0, 65536, (1, 11), dtype=np.uint16),
        "column8": rng.integers(0, 256, (13, 1, 3), dtype=np.uint8),
    }


@pytest.mark.parametrize("filter_type", [FILTER_NONE, FILTER_UP])
@pytest.mark.parametrize("name", sorted(_images()))
def test_pil_reads_back_every_pixel(name: str, filter_type: int) -> None:
    image = _images()[name]
    data = encode_png(image, filter_type=filter_type, level=1, text={"k": "v 1.5"})
    Image.open(io.BytesIO(data)).verify()  # chunk CRCs and structure
    with Image.open(io.BytesIO(data)) as back:
        np.testing.assert_array_equal(np.asarray(back), image)
        assert back.text == {"k": "v 1.5"}


def test_unsupported_arrays_are_refused_with_their_shape() -> None:
    for bad in (
        np.zeros((4, 4), np.float32),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((0, 4), np.uint8),
        np.zeros((4, 4, 3), np.uint16),
    ):
        with pytest.raises(ValueError, match=re.escape(str(bad.shape))):
            encode_png(bad)
    with pytest.raises(ValueError, match="filter_type"):
        encode_png(np.zeros((2, 2), np.uint8), filter_type=1)
