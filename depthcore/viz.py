"""Visual and interchange outputs of a depth prediction: colour maps, 16-bit PNG, PLY, figures.

Every writer goes through :func:`depthcore.io.atomic_path`, so an interrupted
``depthart predict`` never leaves a truncated PNG or PLY that a viewer would
half-read. Conventions (also printed by ``depthart predict --help``):

* ``*_depth_color.png``: the ``turbo`` colour map over the 2..98th percentiles
  of the depth, reversed so that **near is warm (red) and far is cold (blue)**.
* ``*_depth.png``: 16-bit greyscale. ``0`` marks an invalid pixel; a valid depth
  ``d`` is stored as ``v = 1 + round((d - depth_min) / (depth_max - depth_min) * 65534)``
  with ``depth_min``/``depth_max`` in the PNG's text chunks, so
  ``d = depth_min + (v - 1) / 65534 * (depth_max - depth_min)``
  (:func:`read_depth_png16` does exactly this).
* ``*.ply``: binary little-endian point cloud, one vertex per valid pixel, from
  a pinhole camera with the given horizontal field of view, in the OpenGL camera
  frame (x right, y up, the camera looks down -z) so viewers show it upright.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from depthcore.errors import DataError
from depthcore.geometry import backproject, intrinsics_from_fov
from depthcore.io import atomic_path, write_bytes_atomic
from depthcore.png import FILTER_NONE, FILTER_UP, encode_png

PNG16_INVALID = 0
_PNG16_SPAN = 65534
# one PLY vertex as save_ply writes it and read_ply reads it back
_PLY_VERTEX = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")]
)


# Pixels per block of the full-size writers: float64 arithmetic per block only, so a
# 100-Mpx map costs its own float32 array plus small blocks, not several float64 copies.
# The block buffers are allocated once per map and reused: a fresh 2.4 MB float64 array
# per step cost more in page faults than its arithmetic (issue 28); 64 Ki pixels stay in
# cache.
_BLOCK_PIXELS = 1 << 16

# matplotlib figures are not thread-safe (shared font cache): writer threads take turns.
_FIGURE_LOCK = threading.Lock()


def _block_rows(width: int) -> int:
    """Rows per block: about :data:`_BLOCK_PIXELS` pixels, at least one row."""
    return max(1, _BLOCK_PIXELS // max(1, width))


def _row_blocks(height: int, width: int) -> list[slice]:
    """Row ranges of :func:`_block_rows` rows covering ``height`` rows."""
    rows = _block_rows(width)
    return [slice(r, min(r + rows, height)) for r in range(0, height, rows)]


def _block_buffer(height: int, width: int, dtype: type) -> np.ndarray:
    """One buffer as large as the largest of :func:`_row_blocks`, sliced per block."""
    return np.empty((min(height, _block_rows(width)), width), dtype=dtype)


def _robust_range(x: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    x = np.asarray(x)
    finite = x[np.isfinite(x)]  # x's own dtype (float32 maps: 4 bytes a pixel)
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, percentiles))
    if hi <= lo:
        hi = lo + 1e-6
    return lo, hi


def colorize(
    depth_HW: np.ndarray,
    *,
    cmap: str = "turbo",
    value_range: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
    near_is_high: bool = False,
) -> np.ndarray:
    """Colour a depth map so that near is warm: returns ``rgb_HW3`` uint8.

    ``value_range`` fixes the (near, far) depths mapped to the ends of the colour
    map, so several maps (the per-scale strip) share one scale; by default it is
    the robust 2..98th percentile range of this map. ``near_is_high`` is for maps
    whose large values are near (disparity, sqrt-disparity). Non-finite pixels
    are black. Computed in row blocks: memory is the output plus small blocks
    (the colour map's RGBA floats of a whole photo would be 32 bytes a pixel).
    """
    depth_HW = np.asarray(depth_HW)
    if depth_HW.ndim != 2:
        raise ValueError(f"colorize expects an HxW map, got shape {depth_HW.shape}")
    lo, hi = value_range if value_range is not None else _robust_range(depth_HW, percentiles)
    lut_N3 = _colour_lut(cmap)
    channels = [np.ascontiguousarray(lut_N3[:, c]) for c in range(3)]
    n = len(lut_N3)
    span = max(hi - lo, 1e-12)
    rgb_HW3 = np.empty((*depth_HW.shape, 3), dtype=np.uint8)
    t_buf = _block_buffer(*depth_HW.shape, np.float64)
    invalid_buf = np.empty(t_buf.shape, dtype=bool)
    index_buf = np.empty(t_buf.shape, dtype=np.intp)
    for rows in _row_blocks(*depth_HW.shape):
        h = rows.stop - rows.start
        t, invalid, index = t_buf[:h], invalid_buf[:h], index_buf[:h]
        # matplotlib's normalise-then-index in float64, in place
        np.copyto(t, depth_HW[rows])
        np.isfinite(t, out=invalid)
        np.logical_not(invalid, out=invalid)
        np.subtract(t, lo, out=t)
        np.divide(t, span, out=t)
        np.clip(t, 0.0, 1.0, out=t)
        if not near_is_high:
            np.subtract(1.0, t, out=t)  # turbo's high end is red: put near there
        np.multiply(t, n, out=t)
        np.copyto(t, 0.0, where=invalid)
        # matplotlib's own float -> entry rule: x * N truncated, 1.0 -> the last entry (the
        # clip mode of take; t >= 0 here)
        np.copyto(index, t, casting="unsafe")
        block = rgb_HW3[rows]
        for c in range(3):  # a uint8 gather per channel: 3 ms faster than one of (N, 3) rows
            block[..., c] = np.take(channels[c], index, mode="clip")
        block[invalid] = 0
    return rgb_HW3


#: PNG settings of the maps ``depthart predict`` writes (lossless whatever they are): the
#: encoders were the CLI's bottleneck. Smooth 16-bit depth compresses best after the Up
#: filter, colour maps unfiltered; libdeflate level 1 then encodes a 640 x 480 map 2.6-5.5x
#: faster than PIL did at zlib level 1, and smaller (``python bench/bench_png.py``,
#: docs/performance.md).
PNG_LEVEL = 1
PNG16_FILTER = FILTER_UP
PNG_RGB_FILTER = FILTER_NONE


#: matplotlib takes ~0.4 s to import, a fifth of a one-photo ``depthart predict``: the
#: default map's table is stored here, rounded as :func:`_colour_lut` rounds (checked
#: against matplotlib by tests/test_viz.py). Other maps still come from matplotlib.
#: matplotlib ``turbo``, 256 x RGB uint8, row-major, as hex.
TURBO_RGB_HEX = (
    "30123b32154333184a341b51351e5836215f37246638276d392a733a2d793b2f803c32863d358b3e38913f3b"
    "973f3e9c4040a24143a74146ac4249b1424bb5434eba4451bf4454c34456c74559cb455ccf455ed34661d646"
    "64da4666dd4669e0466be3476ee64771e94773eb4776ee4778f0477bf2467df44680f64682f84685fa4687fb"
    "458afc458cfd448ffe4391fe4294ff4196ff4099ff3e9bfe3d9efe3ba0fd3aa3fc38a5fb37a8fa35abf833ad"
    "f731aff52fb2f42eb4f22cb7f02ab9ee28bceb27bee925c0e723c3e422c5e220c7df1fc9dd1ecbda1ccdd81b"
    "d0d51ad2d21ad4d019d5cd18d7ca18d9c818dbc518ddc218dec018e0bd19e2bb19e3b91ae4b61ce6b41de7b2"
    "1fe9af20eaac22ebaa25eca727eea42aefa12cf09e2ff19b32f29835f39438f4913cf58e3ff68a43f78746f8"
    "844af8804ef97d52fa7a55fa7659fb735dfc6f61fc6c65fd6969fd666dfe6271fe5f75fe5c79fe597dff5680"
    "ff5384ff5188ff4e8bff4b8fff4992ff4796fe4499fe429cfe409ffd3fa1fd3da4fc3ca7fc3aa9fb39acfb38"
    "affa37b1f936b4f836b7f735b9f635bcf534bef434c1f334c3f134c6f034c8ef34cbed34cdec34d0ea34d2e9"
    "35d4e735d7e535d9e436dbe236dde037dfdf37e1dd37e3db38e5d938e7d739e9d539ebd339ecd13aeecf3aef"
    "cd3af1cb3af2c93af4c73af5c53af6c33af7c13af8be39f9bc39faba39fbb838fbb637fcb336fcb136fdae35"
    "fdac34fea933fea732fea431fea130fe9e2ffe9b2dfe992cfe962bfe932afe9029fd8d27fd8a26fc8725fc84"
    "23fb8122fb7e21fa7b1ff9781ef9751df8721cf76f1af66c19f56918f46617f36315f26014f15d13f05b12ef"
    "5811ed5510ec530feb500eea4e0de84b0ce7490ce5470be4450ae2430ae14109df3f08dd3d08dc3b07da3907"
    "d83706d63506d43305d23105d02f05ce2d04cc2b04ca2a04c82803c52603c32503c12302be2102bc2002b91e"
    "02b71d02b41b01b21a01af1801ac1701a91601a71401a41301a112019e10019b0f01980e01950d01920b018e"
    "0a018b09028808028507028106027e05027a0403"
)
BUILTIN_HEX = {"turbo": TURBO_RGB_HEX}


@functools.cache
def _colour_lut(cmap: str) -> np.ndarray:
    """The colour map's entries as uint8 RGB, rounded as ``colorize`` always did.

    A table lookup per pixel instead of the colour map's call, which builds 32 bytes of
    RGBA floats a pixel and scales them; cached (read-only) so writer threads share it.
    """
    if cmap in BUILTIN_HEX:  # the default map without importing matplotlib (~0.4 s)
        lut_N3 = np.frombuffer(bytes.fromhex(BUILTIN_HEX[cmap]), dtype=np.uint8).reshape(-1, 3)
        return lut_N3  # frombuffer over bytes: read-only already
    from matplotlib import colormaps

    colour = colormaps[cmap]
    lut_N3 = (colour(np.arange(colour.N))[:, :3] * 255.0 + 0.5).astype(np.uint8)
    lut_N3.flags.writeable = False
    return lut_N3


def is_colormap(name: str) -> bool:
    """Whether ``name`` is a colour map :func:`colorize` can use (matplotlib only if needed)."""
    if name in BUILTIN_HEX:
        return True
    from matplotlib import colormaps

    return name in colormaps


def save_rgb_png(path: str | Path, rgb_HW3: np.ndarray) -> None:
    """Write an 8-bit RGB (or greyscale HxW) PNG atomically."""
    write_bytes_atomic(
        path, encode_png(np.asarray(rgb_HW3), filter_type=PNG_RGB_FILTER, level=PNG_LEVEL)
    )


def save_depth_png16(path: str | Path, depth_HW: np.ndarray) -> tuple[float, float]:
    """Write depth as a 16-bit PNG, its range in text chunks; returns ``(depth_min, depth_max)``.

    Affine-invariant depth has no metric unit, so a fixed scale (millimetres)
    would waste or overflow the 16 bits; the per-image range keeps full
    precision and the text chunks make the file self-describing.
    """
    depth_HW = np.asarray(depth_HW)
    finite_HW = np.isfinite(depth_HW)
    if finite_HW.all():  # the usual case: no copy of the valid pixels
        dmin, dmax = float(depth_HW.min()), float(depth_HW.max())
    elif finite_HW.any():
        finite = depth_HW[finite_HW]
        dmin, dmax = float(finite.min()), float(finite.max())
        del finite
    else:
        dmin, dmax = 0.0, 0.0
    span = dmax - dmin
    v_HW = np.empty(depth_HW.shape, dtype=np.uint16)
    t_buf = _block_buffer(*depth_HW.shape, np.float64)
    for rows in _row_blocks(*depth_HW.shape):  # float64 per block only, in place (see colorize)
        t = t_buf[: rows.stop - rows.start]
        np.copyto(t, depth_HW[rows])
        if span > 0:
            np.subtract(t, dmin, out=t)
            np.divide(t, span, out=t)
        else:
            t.fill(0.0)
        np.multiply(t, _PNG16_SPAN, out=t)
        np.rint(t, out=t)
        np.add(t, 1.0, out=t)
        t[~finite_HW[rows]] = PNG16_INVALID
        v_HW[rows] = t
    text = {
        "depth_min": repr(dmin),
        "depth_max": repr(dmax),
        "depth_encoding": (
            "0 = invalid; depth = depth_min + (v - 1) / 65534 * (depth_max - depth_min)"
        ),
    }
    write_bytes_atomic(path, encode_png(v_HW, filter_type=PNG16_FILTER, level=PNG_LEVEL, text=text))
    return dmin, dmax


def read_depth_png16(path: str | Path) -> np.ndarray:
    """Read a PNG written by :func:`save_depth_png16` back to float32 depth (NaN = invalid)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            text = dict(getattr(img, "text", {}))
            v_HW = np.asarray(img).astype(np.float64)
    except OSError as exc:
        raise DataError(f"{path}: cannot read 16-bit depth PNG: {exc}") from exc
    if "depth_min" not in text or "depth_max" not in text:
        raise DataError(f"{path}: no depth_min/depth_max text chunks (not a depthart depth PNG)")
    dmin, dmax = float(text["depth_min"]), float(text["depth_max"])
    depth_HW = dmin + (v_HW - 1.0) / _PNG16_SPAN * (dmax - dmin)
    depth_HW[v_HW == PNG16_INVALID] = np.nan
    return depth_HW.astype(np.float32)


def backproject_opengl(depth_HW: np.ndarray, fov_deg: float = 60.0) -> np.ndarray:
    """Points ``xyz_HW3`` in the OpenGL camera frame (x right, y up, looking down -z).

    ``fov_deg`` is the horizontal field of view; the principal point is the image
    centre and pixels are square (the usual guess when intrinsics are unknown).
    """
    H, W = depth_HW.shape
    xyz_HW3 = backproject(depth_HW, intrinsics_from_fov(H, W, fov_deg))
    return xyz_HW3 * np.array([1.0, -1.0, -1.0])  # OpenCV (y down, +z) -> OpenGL


def save_ply(
    path: str | Path, depth_HW: np.ndarray, rgb_HW3: np.ndarray, fov_deg: float = 60.0
) -> int:
    """Write a coloured binary PLY of the valid (finite, > 0) pixels; return the vertex count."""
    depth_HW = np.asarray(depth_HW, dtype=np.float64)
    if rgb_HW3.shape[:2] != depth_HW.shape:
        raise ValueError(f"rgb {rgb_HW3.shape[:2]} and depth {depth_HW.shape} sizes differ")
    valid_HW = np.isfinite(depth_HW) & (depth_HW > 0)
    xyz_N3 = backproject_opengl(np.where(valid_HW, depth_HW, 0.0), fov_deg)[valid_HW]
    rgb_N3 = np.asarray(rgb_HW3, dtype=np.uint8)[valid_HW]
    vertex = np.empty(len(xyz_N3), dtype=_PLY_VERTEX)
    for i, axis in enumerate("xyz"):
        vertex[axis] = xyz_N3[:, i]
    for i, channel in enumerate("rgb"):
        vertex[channel] = rgb_N3[:, i]
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"comment depthart affine-invariant depth, horizontal fov {fov_deg:g} deg\n"
        f"element vertex {len(vertex)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(vertex.tobytes())
    return len(vertex)


def read_ply(path: str | Path) -> tuple[dict[str, str], np.ndarray]:
    """Read a PLY written by :func:`save_ply`: (header fields, structured vertex array)."""
    path = Path(path)
    data = path.read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise DataError(f"{path}: not a PLY file (no 'ply' magic or no end_header)")
    lines = data[:end].decode("ascii").splitlines()
    fields = {line.split(" ", 1)[0]: line.split(" ", 1)[-1] for line in lines}
    n = int(next(line.split()[2] for line in lines if line.startswith("element vertex")))
    body = data[end + len(b"end_header\n") :]
    if len(body) != n * _PLY_VERTEX.itemsize:
        raise DataError(f"{path}: header says {n} vertices but the body has {len(body)} bytes")
    return fields, np.frombuffer(body, dtype=_PLY_VERTEX)


def save_strip_figure(
    path: str | Path,
    rgb_HW3: np.ndarray,
    panels: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    cmap: str = "turbo",
) -> None:
    """Save ``[input | panel_1 | ... | panel_K]`` as one PNG (per-scale refinement strip).

    All depth panels share the colour range of the last one (the final
    prediction), so the figure shows how each scale refines the same scene
    rather than re-stretching every panel.
    """
    if len(panels) != len(titles):
        raise ValueError(f"{len(panels)} panels but {len(titles)} titles")
    value_range = _robust_range(np.asarray(panels[-1]), (2.0, 98.0))  # no float64 copy
    images = [rgb_HW3] + [colorize(p, cmap=cmap, value_range=value_range) for p in panels]
    with _FIGURE_LOCK:
        _save_strip(path, images, ["input", *titles])


def _save_strip(path: str | Path, images: Sequence[np.ndarray], titles: Sequence[str]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(images)
    H, W = images[0].shape[:2]
    fig = Figure(figsize=(2.0 * n * W / max(H, W), 2.0 * H / max(H, W) + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, img, title in zip(axes, images, titles, strict=True):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout(pad=0.2)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
