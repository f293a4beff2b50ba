"""Image decoding, aspect handling and the normalised-space -> depth rule."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from depthcore.errors import DataError
from depthcore.predict.images import fit_to_square, load_rgb
from depthcore.spaces import normalised_to_depth


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_rgb16_png(path, rgb_HW3_u16: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write this mode)."""
    h, w, _ = rgb_HW3_u16.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb_HW3_u16)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def test_rgb_passes_unchanged(tmp_path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out, notes = load_rgb(tmp_path / "a.png")
    assert notes == [] and np.array_equal(out, rgb)


@pytest.mark.parametrize(
    ("array", "note"),
    [
        (np.full((4, 5, 4), 100, np.uint8), "alpha"),
        (np.full((4, 5), 100, np.uint8), "greyscale"),
        (np.full((4, 5), 100 * 257, np.uint16), "16-bit"),
    ],
)
def test_conversions_warn_and_give_rgb(tmp_path, array, note) -> None:
    Image.fromarray(array).save(tmp_path / "x.png")
    out, notes = load_rgb(tmp_path / "x.png")
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    assert np.all(out == 100)
    assert any(note in n for n in notes)


def test_rgb16_png_is_read(tmp_path) -> None:
    rgb = np.zeros((3, 4, 3), np.uint16)
    rgb[..., 0] = 65535
    write_rgb16_png(tmp_path / "deep.png", rgb)
    out, _ = load_rgb(tmp_path / "deep.png")
    assert out.shape == (3, 4, 3)
    assert np.all(out[..., 0] == 255) and np.all(out[..., 1:] == 0)


def test_bad_files_name_the_file(tmp_path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    for name in ("empty.jpg", "text.png"):
        with pytest.raises(DataError, match=f"{name}: cannot read image"):
            load_rgb(tmp_path / name)
    with pytest.raises(DataError, match="missing.png: no such file"):
        load_rgb(tmp_path / "missing.png")


def test_zero_size_png_is_refused(tmp_path) -> None:
    write_rgb16_png(tmp_path / "zero.png", np.zeros((0, 4, 3), np.uint16))
    with pytest.raises(DataError, match="zero.png"):
        load_rgb(tmp_path / "zero.png")


def test_fit_pad_keeps_aspect_and_centres() -> None:
    rgb = np.zeros((30, 60, 3), np.uint8)
    rgb[:, :, 0] = 255
    square, box = fit_to_square(rgb, 16, "pad")
    assert square.shape == (16, 16, 3)
    assert (box.top, box.left, box.height, box.width) == (4, 0, 8, 16)
    assert np.all(square[..., 0] == 255)  # edge padding repeats the border colour
    stretched, box = fit_to_square(rgb, 16, "stretch")
    assert (box.height, box.width) == (16, 16)


def test_normalised_to_depth_documented_values() -> None:
    y = np.array([1.0, -1.0, 0.0, -5.0])
    depth = normalised_to_depth(y, "sqrt_disparity", near_far_ratio=16.0)
    # s_far = 1/4: y=1 -> s=1 -> z=1; y=-1 -> s=1/4 -> z=16; y=0 -> s=5/8; y=-5 clipped at s=1/40
    np.testing.assert_allclose(depth, [1.0, 16.0, 1 / 0.625**2, 1600.0], rtol=1e-6)
    np.testing.assert_allclose(normalised_to_depth(y, "scale_depth"), [1.0, 1e-6, 0.5, 1e-6])
    with pytest.raises(ValueError, match="unknown prediction space"):
        normalised_to_depth(y, "metric")
