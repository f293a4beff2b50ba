"""Output formats of depthcore.viz, each read back from disk."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from depthcore import viz as vis
from depthcore.errors import DataError


def _ramp_depth(h: int = 12, w: int = 16) -> np.ndarray:
    return np.linspace(1.0, 9.0, h * w, dtype=np.float32).reshape(h, w)


def test_colorize_near_is_warm_and_nan_is_black() -> None:
    depth_HW = _ramp_depth()
    depth_HW[0, 1] = np.nan
    rgb_HW3 = vis.colorize(depth_HW).astype(int)
    near, far = rgb_HW3[0, 0], rgb_HW3[-1, -1]
    assert rgb_HW3.shape == (12, 16, 3)
    assert near[0] > near[2]  # red over blue at the nearest pixel
    assert far[2] > far[0]  # blue over red at the farthest
    assert rgb_HW3[0, 1].tolist() == [0, 0, 0]


def test_depth_png16_round_trip(tmp_path) -> None:
    depth_HW = _ramp_depth()
    depth_HW[3, 4] = np.nan
    path = tmp_path / "d.png"
    dmin, dmax = vis.save_depth_png16(path, depth_HW)
    with Image.open(path) as img:
        assert img.mode == "I;16"  # 16 bits per pixel on disk
        raw = np.asarray(img)
        assert float(img.text["depth_min"]) == pytest.approx(1.0)
    assert (dmin, dmax) == pytest.approx((1.0, 9.0))
    assert raw[3, 4] == 0 and raw.max() == 65535 and raw[0, 0] == 1
    back_HW = vis.read_depth_png16(path)
    assert np.isnan(back_HW[3, 4])
    valid = np.isfinite(depth_HW)
    np.testing.assert_allclose(back_HW[valid], depth_HW[valid], atol=8.0 / 65534)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temporary


def _plain_colorize(depth_HW, lo, hi, near_is_high, lut_N3):
    """colorize's rule as plain expressions: matplotlib's normalise, x * N truncated."""
    n = len(lut_N3)
    t = np.clip((depth_HW.astype(np.float64) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    t = t if near_is_high else 1.0 - t
    index = np.minimum((np.nan_to_num(t, nan=0.0) * n).astype(np.intp), n - 1)
    rgb_HW3 = lut_N3[index]
    rgb_HW3[~np.isfinite(depth_HW)] = 0
    return rgb_HW3


def _awkward_maps() -> list[np.ndarray]:
    """Maps across colorize's block boundary, with NaN, +-inf, constant and all-invalid."""
    rng = np.random.default_rng(3)
    maps = []
    for shape, dtype in (((300, 257), np.float32), ((2, 3), np.float64), ((1, 70000), np.float32)):
        smooth = (rng.random(shape) * 7.0 + 0.5).astype(dtype)
        holes = smooth.copy()
        holes.flat[rng.integers(0, holes.size, holes.size // 9 + 1)] = np.nan
        holes.flat[0], holes.flat[-1] = np.inf, -np.inf
        maps += [smooth, holes, np.full(shape, 2.5, dtype), np.full(shape, np.nan, dtype)]
    return maps


@pytest.mark.parametrize("cmap", ["turbo", "viridis"])
def test_colorize_matches_the_plain_rule_on_awkward_maps(cmap: str) -> None:
    """The in-place, blocked colorize gives the bytes of the rule written out plainly."""
    lut_N3 = vis._colour_lut(cmap)
    for depth_HW in _awkward_maps():
        for near_is_high in (False, True):
            for value_range in (None, (1.0, 4.0), (3.0, 3.0)):
                got = vis.colorize(
                    depth_HW, cmap=cmap, near_is_high=near_is_high, value_range=value_range
                )
                lo, hi = value_range or vis._robust_range(depth_HW, (2.0, 98.0))
                want = _plain_colorize(depth_HW, lo, hi, near_is_high, lut_N3)
                np.testing.assert_array_equal(got, want, err_msg=f"{depth_HW.shape} {cmap}")


def test_depth_png16_values_match_the_documented_rule(tmp_path) -> None:
    """v = 1 + round((d - min) / (max - min) * 65534), 0 where invalid, on awkward maps."""
    for k, depth_HW in enumerate(_awkward_maps()):
        if depth_HW.ndim != 2:
            continue
        path = tmp_path / f"{k}.png"
        dmin, dmax = vis.save_depth_png16(path, depth_HW)
        finite = np.isfinite(depth_HW)
        with np.errstate(invalid="ignore", over="ignore"):  # inf pixels, masked below
            scaled = (depth_HW.astype(np.float64) - dmin) / ((dmax - dmin) or np.inf)
            v = 1 + np.rint(np.nan_to_num(scaled) * 65534)
        want = np.where(finite, v, 0).astype(np.uint16)
        with Image.open(path) as img:
            np.testing.assert_array_equal(np.asarray(img), want, err_msg=str(depth_HW.shape))
        if finite.any():
            assert (dmin, dmax) == (float(depth_HW[finite].min()), float(depth_HW[finite].max()))


def test_read_depth_png16_refuses_plain_png(tmp_path) -> None:
    path = tmp_path / "plain.png"
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(path)
    with pytest.raises(DataError, match="plain.png"):
        vis.read_depth_png16(path)


def test_ply_header_count_and_geometry(tmp_path) -> None:
    depth_HW = np.full((4, 6), 2.0, np.float32)
    depth_HW[0, 0] = np.nan
    depth_HW[1, 1] = 0.0
    rgb_HW3 = np.zeros((4, 6, 3), np.uint8)
    rgb_HW3[..., 0] = 200
    n = vis.save_ply(tmp_path / "c.ply", depth_HW, rgb_HW3, fov_deg=90.0)
    fields, vertex = vis.read_ply(tmp_path / "c.ply")
    assert n == 22 == len(vertex)
    assert fields["format"] == "binary_little_endian 1.0"
    assert np.all(vertex["z"] == -2.0) and np.all(vertex["r"] == 200)
    # fov 90 deg: f = W/2, so the last column centre (u = 2.5) sits at x = 2.5 * 2 / 3
    assert vertex["x"].max() == pytest.approx(2.5 * 2.0 / 3.0)
    assert vertex["y"].max() > 0 > vertex["y"].min()  # OpenGL frame: top rows have y > 0


def test_strip_figure_is_a_png(tmp_path) -> None:
    rgb_HW3 = np.zeros((12, 16, 3), np.uint8)
    panels = [_ramp_depth() * k for k in (1, 2, 3)]
    vis.save_strip_figure(tmp_path / "s.png", rgb_HW3, panels, ["a", "b", "c"])
    with Image.open(tmp_path / "s.png") as img:
        assert img.format == "PNG" and img.width > img.height


def test_the_builtin_turbo_table_is_matplotlibs() -> None:
    """The stored table (no matplotlib import on the default path) is matplotlib's turbo,
    rounded as colorize rounds; so a colorized map is the same either way."""
    from matplotlib import colormaps

    stored = vis._colour_lut("turbo")
    turbo = colormaps["turbo"]
    expected = (turbo(np.arange(turbo.N))[:, :3] * 255.0 + 0.5).astype(np.uint8)
    assert stored.shape == (256, 3) and np.array_equal(stored, expected)
    assert not stored.flags.writeable
    assert vis.is_colormap("turbo") and vis.is_colormap("viridis")
    assert not vis.is_colormap("no-such-map")


def test_predict_imports_neither_matplotlib_nor_scipy_ndimage_at_start() -> None:
    """A fresh `depthart` start: the import time of the default path stays lean."""
    code = (
        "import sys, depthcore.cli, depthcore.cli.predict\n"
        "from depthcore import viz\n"
        "viz._colour_lut('turbo'); viz.is_colormap('turbo')\n"
        "print(sorted(m for m in ('matplotlib', 'scipy.ndimage') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
