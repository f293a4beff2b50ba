"""Hand-computed checks of resizing, normalisation and infilling."""

from __future__ import annotations

import numpy as np
import pytest

from depthcore.data import transforms
from depthcore.data.transforms import (
    Normalisation,
    apply_normalisation,
    area_overlaps,
    area_weights,
    fit_normalisation,
    infill_nearest,
    invert_normalisation,
    normalise_depth,
    percentiles_of,
    resize_depth,
    resize_rgb,
    select_ranks,
    valid_depth_mask,
)


def test_area_weights_by_hand() -> None:
    np.testing.assert_allclose(area_weights(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    # 3 -> 2: each output covers 1.5 input pixels.
    np.testing.assert_allclose(area_weights(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])


def test_area_overlaps_are_area_weights_in_whole_numbers() -> None:
    assert area_overlaps(3, 2).tolist() == [[2, 1, 0], [0, 1, 2]]  # in units of 1/2 pixel
    for n_in, n_out in [(768, 64), (96, 64), (128, 64), (5, 11), (7, 3)]:
        overlaps = area_overlaps(n_in, n_out)
        assert (overlaps.sum(axis=1) == n_in).all()
        np.testing.assert_allclose(overlaps / n_in, area_weights(n_in, n_out), rtol=1e-12)


def _exact_area_mean(rgb_HW3: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The area average in integers, rounded half to even (the definition)."""
    H, W = rgb_HW3.shape[:2]
    rows = np.tensordot(area_overlaps(H, size[0]), rgb_HW3.astype(np.int64), axes=(1, 0))
    num = np.moveaxis(np.tensordot(rows, area_overlaps(W, size[1]), axes=(1, 1)), -1, 1)
    quot, rem = np.divmod(num, H * W)
    return quot + ((2 * rem > H * W) | ((2 * rem == H * W) & (quot % 2 == 1)))


def _float64_area_mean(rgb_HW3: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The previous resize: float64 weight products, then np.round (not a tie-safe sum)."""
    rows = np.tensordot(area_weights(rgb_HW3.shape[0], size[0]), rgb_HW3.astype(float), (1, 0))
    out = np.moveaxis(np.tensordot(rows, area_weights(rgb_HW3.shape[1], size[1]), (1, 1)), -1, 1)
    return np.round(out)


@pytest.mark.parametrize(
    "shape, size",
    [((768, 1024), (64, 64)), ((96, 128), (64, 64)), ((480, 640), (256, 256)), ((5, 7), (11, 3))],
)
def test_resize_rgb_is_the_exact_area_average(shape, size) -> None:
    rng = np.random.default_rng(0)
    rgb_HW3 = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    rgb_HW3[: shape[0] // 4] = 255  # a saturated band: sums at the top of the range
    out = resize_rgb(rgb_HW3, size)
    assert out.dtype == np.uint8 and out.shape == (*size, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, _exact_area_mean(rgb_HW3, size))
    # Against the float64 products it replaced: equal except at exact .5 ties, by <= 1.
    H, W = shape
    rows = np.tensordot(area_overlaps(H, size[0]), rgb_HW3.astype(np.int64), axes=(1, 0))
    num = np.moveaxis(np.tensordot(rows, area_overlaps(W, size[1]), axes=(1, 1)), -1, 1)
    tie = 2 * (num % (H * W)) == H * W
    differ = out != _float64_area_mean(rgb_HW3, size)
    assert not (differ & ~tie).any()
    assert np.abs(out.astype(int) - _float64_area_mean(rgb_HW3, size)).max() <= 1


@pytest.mark.parametrize("taps", [4, 0])  # the gather route where it applies; the sparse one
@pytest.mark.parametrize(
    "shape, size",
    [((96, 128, 3), (64, 64)), ((7, 5, 1), (3, 11)), ((100, 37, 4), (97, 13)), ((9, 9, 3), (9, 3))],
)
def test_resize_rgb_routes_agree_with_the_exact_area_average(
    shape, size, taps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transforms, "_MAX_TAPS", taps)
    transforms._area_taps.cache_clear()
    rng = np.random.default_rng(1)
    for rgb_HW3 in (
        rng.integers(0, 256, shape, dtype=np.uint8),
        (rng.integers(0, 2, shape) * 255).astype(np.uint8),  # two levels: many exact .5 ties
    ):
        np.testing.assert_array_equal(resize_rgb(rgb_HW3, size), _exact_area_mean(rgb_HW3, size))
    transforms._area_taps.cache_clear()


def test_resize_rgb_refuses_non_uint8() -> None:
    with pytest.raises(ValueError, match="uint8"):
        resize_rgb(np.zeros((4, 4, 3), np.float32), (2, 2))


def test_percentiles_of_equals_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    qs = (0.0, 2.0, 33.3, 50.0, 90.0, 98.0, 100.0)
    for n in (1, 2, 3, 10, 4097, 70_000, 300_000):  # above 65,536: the bracketed selection
        for values in (
            rng.normal(size=n),
            rng.integers(0, 5, n).astype(np.float64),  # many ties
            np.sort(rng.lognormal(size=n))[::-1].copy(),
            np.full(n, 2.5),
        ):
            for q in (qs, (90.0,), (2.0, 98.0)):
                assert percentiles_of(values.copy(), q) == list(np.percentile(values, q)), (n, q)


def test_select_ranks_when_the_strided_sample_misleads() -> None:
    # Every sampled position holds 0, the rest is large: the sample's bracket misses the
    # 90th percentile, so the whole array is partitioned; the answer stays exact.
    n = 200_000
    values = np.arange(n, dtype=np.float64) + 1.0
    values[:: n // 4096] = 0.0
    k = int(0.9 * (n - 1))
    assert select_ranks(values.copy(), [k, k + 1]) == np.sort(values)[[k, k + 1]].tolist()
    assert percentiles_of(values.copy(), (90.0,)) == [np.percentile(values, 90.0)]
    with pytest.raises(ValueError, match="float64"):
        percentiles_of(values.astype(np.float32), (90.0,))


def test_resize_rgb_area_average() -> None:
    rgb_HW3 = np.zeros((2, 4, 3), np.uint8)
    rgb_HW3[:, 1] = 100
    rgb_HW3[0, 3] = 255
    out = resize_rgb(rgb_HW3, (1, 2))
    assert out.dtype == np.uint8
    assert out[0, 0, 0] == 50  # (0 + 100 + 0 + 100) / 4
    assert out[0, 1, 0] == 64  # 255 / 4 = 63.75 -> 64


def test_resize_depth_invalid_pixels_do_not_bleed() -> None:
    depth_HW = np.array([[1.0, np.nan, 3.0, 3.0], [1.0, 1.0, 3.0, 3.0]], np.float32)
    valid_HW = valid_depth_mask(depth_HW)
    d, v = resize_depth(depth_HW, valid_HW, (1, 2), method="masked_area")
    np.testing.assert_allclose(d, [[1.0, 3.0]])
    assert v.all()
    d, v = resize_depth(depth_HW, valid_HW, (1, 2), method="nearest")
    # Nearest samples source pixel (1, 1) and (1, 3).
    np.testing.assert_allclose(d, [[1.0, 3.0]])
    half = np.array([[np.nan, np.nan, 2.0, 2.0]], np.float32)
    d, v = resize_depth(half, valid_depth_mask(half), (1, 1), method="masked_area")
    assert v.all() and d[0, 0] == 2.0  # exactly half valid counts as valid
    d, v = resize_depth(half, valid_depth_mask(half), (1, 2), method="nearest")
    assert v.tolist() == [[False, True]] and np.isnan(d[0, 0])


def test_sqrt_disparity_by_hand_and_inverse() -> None:
    # Depths 1 and 4 m -> y = 1 and 0.5; with percentiles (0, 100) y=0.5 -> -1, y=1 -> +1.
    depth_HW = np.array([[1.0, 4.0], [16.0 / 9.0, 4.0]], np.float32)
    valid_HW = np.ones((2, 2), bool)
    target_HW, norm = normalise_depth(depth_HW, valid_HW, "sqrt_disparity", (0.0, 100.0))
    assert norm.a == pytest.approx(4.0) and norm.b == pytest.approx(-3.0)
    # 16/9 m -> y = 0.75 -> 0.
    np.testing.assert_allclose(target_HW, [[1.0, -1.0], [0.0, -1.0]], atol=1e-6)
    np.testing.assert_allclose(invert_normalisation(target_HW, norm), depth_HW, rtol=1e-5)


def test_sqrt_disparity_clips_outside_percentiles() -> None:
    rng = np.random.default_rng(0)
    depth_HW = rng.uniform(1.0, 10.0, (32, 32)).astype(np.float32)
    valid_HW = np.ones_like(depth_HW, bool)
    target_HW, norm = normalise_depth(depth_HW, valid_HW, "sqrt_disparity")
    assert target_HW.min() == -1.0 and target_HW.max() == 1.0
    inside = np.abs(target_HW) < 1
    assert 0.94 < inside.mean() < 0.97  # 4% of the pixels are clipped, ties aside
    back = invert_normalisation(target_HW, norm)
    np.testing.assert_allclose(back[inside], depth_HW[inside], rtol=1e-4)


def test_fit_ignores_invalid_pixels() -> None:
    depth_HW = np.array([[1.0, 4.0, 1000.0]], np.float32)
    valid_HW = np.array([[True, True, False]])
    norm = fit_normalisation(depth_HW, valid_HW, "sqrt_disparity", (0.0, 100.0))
    assert norm == Normalisation("sqrt_disparity", pytest.approx(4.0), pytest.approx(-3.0))


def test_scale_depth_official_form_and_inverse() -> None:
    depth_HW = np.array([[1.0, 2.0, 4.0, 8.0]], np.float32)
    valid_HW = np.ones_like(depth_HW, bool)
    target_HW, norm = normalise_depth(depth_HW, valid_HW, "scale_depth", (2.0, 100.0))
    assert norm.a == pytest.approx(0.25) and norm.b == -1.0  # 2 / q100 = 2 / 8
    np.testing.assert_allclose(target_HW, [[-0.75, -0.5, 0.0, 1.0]])
    np.testing.assert_allclose(invert_normalisation(target_HW, norm), depth_HW)
    assert apply_normalisation(np.array([[16.0]]), norm)[0, 0] == 1.0  # clipped


def test_normalisation_refuses_degenerate_input() -> None:
    flat = np.full((3, 3), 2.0, np.float32)
    with pytest.raises(ValueError, match="degenerate"):
        fit_normalisation(flat, np.ones((3, 3), bool), "sqrt_disparity")
    with pytest.raises(ValueError, match="without any valid pixel"):
        fit_normalisation(flat, np.zeros((3, 3), bool), "scale_depth")
    with pytest.raises(ValueError, match="unknown normalisation space"):
        fit_normalisation(flat, np.ones((3, 3), bool), "log")


def test_infill_nearest_by_hand_keeps_valid_pixels() -> None:
    depth_HW = np.array(
        [[1.0, np.nan, np.nan, 5.0], [2.0, 0.0, np.inf, 6.0]],
        np.float32,
    )
    valid_HW = valid_depth_mask(depth_HW)
    assert valid_HW.tolist() == [[True, False, False, True], [True, False, False, True]]
    filled_HW = infill_nearest(depth_HW, valid_HW)
    np.testing.assert_array_equal(filled_HW, [[1.0, 1.0, 5.0, 5.0], [2.0, 2.0, 6.0, 6.0]])
    assert filled_HW.dtype == np.float32
    with pytest.raises(ValueError, match="without any valid pixel"):
        infill_nearest(depth_HW, np.zeros_like(valid_HW))
