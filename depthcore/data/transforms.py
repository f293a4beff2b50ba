"""Pure array transforms of preprocessing: resizing, depth normalisation, infilling.

Each function takes and returns numpy arrays and has no state, so the preprocess
stage, the evaluation code and the tests all use the same definitions. Every
normalisation returns the affine parameters needed to undo it exactly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import sparse

Space = Literal["sqrt_disparity", "scale_depth"]
SPACES: tuple[str, ...] = ("sqrt_disparity", "scale_depth")


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """Row-stochastic ``(n_out, n_in)`` matrix of box-filter overlaps for one axis.

    Output pixel i covers input interval [i * s, (i + 1) * s) with s = n_in / n_out; each
    weight is the overlap of that interval with an input pixel, divided by s. This is
    exact area resampling for any ratio, up or down (like OpenCV's INTER_AREA).
    """
    if n_in <= 0 or n_out <= 0:
        raise ValueError(f"sizes must be positive, got {n_in} -> {n_out}")
    s = n_in / n_out
    lo_O = np.arange(n_out)[:, None] * s
    hi_O = lo_O + s
    px_I = np.arange(n_in)[None, :]
    overlap_OI = np.clip(np.minimum(hi_O, px_I + 1) - np.maximum(lo_O, px_I), 0.0, None)
    return overlap_OI / overlap_OI.sum(axis=1, keepdims=True)


def _area(x_HW: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-resample the first two axes of ``x`` (float64 result)."""
    Wh_OH = area_weights(x_HW.shape[0], size[0])
    Ww_OW = area_weights(x_HW.shape[1], size[1])
    # Two matrix products (rows, then columns) instead of one 4-index einsum, which
    # numpy would evaluate as a naive loop.
    rows_OW = np.tensordot(Wh_OH, x_HW.astype(np.float64), axes=(1, 0))  # (O, W, ...)
    out_O_P = np.tensordot(rows_OW, Ww_OW, axes=(1, 1))  # (O, ..., P)
    return np.moveaxis(out_O_P, -1, 1)  # (O, P, ...)


def area_overlaps(n_in: int, n_out: int) -> np.ndarray:
    """Integer ``(n_out, n_in)`` box-filter overlaps for one axis, in units of 1 / n_out pixel.

    The same boxes as :func:`area_weights` measured on a grid n_out times finer, so every
    overlap is a whole number and each row sums to n_in: ``area_weights`` is this matrix
    divided by n_in, without the rounding.
    """
    if n_in <= 0 or n_out <= 0:
        raise ValueError(f"sizes must be positive, got {n_in} -> {n_out}")
    lo_O = np.arange(n_out, dtype=np.int64)[:, None] * n_in
    px_I = np.arange(n_in, dtype=np.int64)[None, :] * n_out
    return np.clip(np.minimum(lo_O + n_in, px_I + n_out) - np.maximum(lo_O, px_I), 0, None)


@functools.lru_cache(maxsize=16)
def _overlap_matrix(n_in: int, n_out: int, dtype: type) -> sparse.csr_array:
    """:func:`area_overlaps` as a sparse matrix: each output pixel touches ~n_in / n_out inputs."""
    return sparse.csr_array(area_overlaps(n_in, n_out).astype(dtype))


# Resizes whose output pixels each touch at most this many input pixels per axis (any
# upscale, downscales up to 3x) take resize_rgb's gather route; larger ones its sparse one.
_MAX_TAPS = 4


@functools.lru_cache(maxsize=16)
def _area_taps(n_in: int, n_out: int, channels: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """:func:`area_overlaps` as taps: per tap k, ``(index, overlap)`` over the output pixels.

    An output box overlaps consecutive input pixels, so tap k of output o is input
    ``first_o + k`` with its whole-number overlap (0 past the box's last pixel), each
    repeated for ``channels`` interleaved values (index ``pixel * channels + c``, float64).
    None when some box touches more than ``_MAX_TAPS`` inputs. Read-only, made once.
    """
    overlap_OI = area_overlaps(n_in, n_out)
    touched_OI = overlap_OI > 0
    count_O = touched_OI.sum(axis=1)
    if count_O.max() > _MAX_TAPS:
        return None
    taps = []
    for k in range(count_O.max()):
        index_O = np.minimum(touched_OI.argmax(axis=1) + k, n_in - 1)
        overlap_O = np.where(k < count_O, overlap_OI[np.arange(n_out), index_O], 0)
        index_OC = (index_O[:, None] * channels + np.arange(channels)).ravel()
        overlap_OC = np.repeat(overlap_O.astype(np.float64), channels)
        index_OC.flags.writeable = False
        overlap_OC.flags.writeable = False
        taps.append((index_OC, overlap_OC))
    return taps


def _resize_rgb_taps(
    rgb_HW3: np.ndarray,
    rows: list[tuple[np.ndarray, np.ndarray]],
    cols: list[tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """:func:`resize_rgb`'s numerator by gathers: per tap, whole rows (then the columns of
    all channels at once) times their overlap, summed; no transposes, no sparse calls."""
    H, W, C = rgb_HW3.shape
    first = np.float32 if 255 * H < 2**24 else np.float64  # sums of whole numbers: exact
    x_H_WC = rgb_HW3.reshape(H, W * C).astype(first)
    rows_OH_WC = np.zeros((rows[0][0].size, W * C), first)
    for index_O, overlap_O in rows:
        rows_OH_WC += x_H_WC[index_O] * overlap_O.astype(first)[:, None]
    num_OH_OWC = np.zeros((rows_OH_WC.shape[0], cols[0][0].size))  # float64: < 2**53
    for index_OWC, overlap_OWC in cols:
        num_OH_OWC += np.take(rows_OH_WC, index_OWC, axis=1) * overlap_OWC
    return num_OH_OWC


def resize_rgb(rgb_HW3: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-resize uint8 ``rgb_HW3`` to ``size`` = (H, W), rounding back to uint8.

    Exact: the area average of whole numbers with the integer overlaps of
    :func:`area_overlaps` is a fraction ``num / (H_in * W_in)`` whose numerator is a whole
    number summed exactly (float32 for the first axis while it stays below 2**24, float64
    for the second, below 2**53; sparse, so ~H_in x W_in x 3 products instead of a dense
    matrix's 64 times more), then divided once and rounded half to even. A float average
    (the previous float64 matrix products) agrees everywhere except at exact .5 ties,
    where its rounding error picked the side.
    """
    if rgb_HW3.dtype != np.uint8 or rgb_HW3.ndim != 3:
        raise ValueError(f"want H x W x C uint8 colour, got {rgb_HW3.shape} {rgb_HW3.dtype}")
    if tuple(rgb_HW3.shape[:2]) == tuple(size):
        return rgb_HW3.copy()
    H, W, C = rgb_HW3.shape
    OH, OW = size
    rows, cols = _area_taps(H, OH, 1), _area_taps(W, OW, C)
    if rows is not None and cols is not None:  # few taps: gathers beat sparse products
        mean_OH_OWC = _resize_rgb_taps(rgb_HW3, rows, cols) / (H * W)
        return np.rint(mean_OH_OWC).astype(np.uint8).reshape(OH, OW, C)
    first = np.float32 if 255 * H < 2**24 else np.float64
    x_H_WC = rgb_HW3.reshape(H, W * C).astype(first)
    rows_OH_WC = _overlap_matrix(H, OH, first) @ x_H_WC  # whole numbers <= 255 * H
    rows_W_OHC = rows_OH_WC.reshape(OH, W, C).transpose(1, 0, 2).reshape(W, OH * C)
    num_OW_OHC = _overlap_matrix(W, OW, np.float64) @ rows_W_OHC.astype(np.float64)
    # num / (H * W) is correctly rounded: an exact .5 stays exact, and any other
    # average is at least 1 / (H * W) away from one, so rint rounds the exact average.
    mean_OW_OHC = num_OW_OHC / (H * W)
    return np.rint(mean_OW_OHC).astype(np.uint8).reshape(OW, OH, C).transpose(1, 0, 2).copy()


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output pixel centre for nearest-neighbour resizing."""
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)


def resize_depth(
    depth_HW: np.ndarray,
    valid_HW: np.ndarray,
    size: tuple[int, int],
    method: Literal["nearest", "masked_area"] = "nearest",
) -> tuple[np.ndarray, np.ndarray]:
    """Resize depth and its validity mask without letting invalid pixels bleed in.

    ``nearest`` samples source pixels (no mixed depths across edges); ``masked_area``
    averages only valid pixels and marks an output pixel valid when at least half of
    its area is valid. Invalid output pixels hold NaN.
    """
    depth_HW = np.asarray(depth_HW)
    valid_HW = np.asarray(valid_HW, dtype=bool)
    if depth_HW.shape != valid_HW.shape:
        raise ValueError(f"depth {depth_HW.shape} and mask {valid_HW.shape} differ")
    if method == "nearest" and depth_HW.shape == tuple(size):  # nearest at the same size: a copy
        out_valid, out_depth = valid_HW.copy(), depth_HW.astype(np.float32)
    elif method == "nearest":
        rows = nearest_indices(depth_HW.shape[0], size[0])
        cols = nearest_indices(depth_HW.shape[1], size[1])
        out_valid = valid_HW[np.ix_(rows, cols)]
        out_depth = depth_HW[np.ix_(rows, cols)].astype(np.float32)
    elif method == "masked_area":
        num = _area(np.where(valid_HW, depth_HW, 0.0), size)
        den = _area(valid_HW.astype(np.float64), size)
        out_valid = den >= 0.5 - 1e-9
        with np.errstate(invalid="ignore", divide="ignore"):
            out_depth = (num / den).astype(np.float32)
    else:
        raise ValueError(f"unknown depth resize method {method!r}")
    return np.where(out_valid, out_depth, np.nan).astype(np.float32), out_valid


def valid_depth_mask(depth_HW: np.ndarray) -> np.ndarray:
    """Pixels with a usable depth: finite and strictly positive."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth_HW) & (depth_HW > 0)


def infill_nearest(depth_HW: np.ndarray, valid_HW: np.ndarray) -> np.ndarray:
    """Fill every invalid pixel with the depth of its nearest valid pixel (float32).

    The VQ-VAE must never see holes, but losses and metrics keep using ``valid_HW``.
    Ties between equally near valid pixels are broken by scipy's EDT, deterministically.
    """
    valid_HW = np.asarray(valid_HW, dtype=bool)
    if not valid_HW.any():
        raise ValueError("cannot infill a depth map without any valid pixel")
    if valid_HW.all():
        return depth_HW.astype(np.float32)
    from scipy import ndimage  # here: ~0.3 s of import `depthart predict` does not need

    _, (rows_HW, cols_HW) = ndimage.distance_transform_edt(~valid_HW, return_indices=True)
    return depth_HW[rows_HW, cols_HW].astype(np.float32)


@dataclass(frozen=True)
class Normalisation:
    """``target = clip(a * g(z) + b, -1, 1)`` where g is 1/sqrt(z) or z, depending on space."""

    space: str
    a: float
    b: float


def _forward_feature(depth_HW: np.ndarray, space: str) -> np.ndarray:
    if space == "sqrt_disparity":
        return 1.0 / np.sqrt(depth_HW.astype(np.float64))
    if space == "scale_depth":
        return depth_HW.astype(np.float64)
    raise ValueError(f"unknown normalisation space {space!r} (choose from {SPACES})")


def percentiles_of(values_N: np.ndarray, qs: Sequence[float]) -> list[float]:
    """``np.percentile(values_N, qs)`` (its default linear method), bit for bit, but faster.

    For finite float64 values; ``values_N`` is scratch (reordered in place). np.percentile
    copies the array and partitions it at the first and last element too (to detect NaN);
    this selects just the neighbours of each percentile (:func:`select_ranks`), then
    interpolates as numpy does: virtual index (n - 1) * q / 100, and from the upper
    neighbour, ``b - (b - a) * (1 - t)``, when t >= 0.5.
    """
    n = values_N.size
    if n == 0:
        raise ValueError("percentiles of an empty array")
    if values_N.dtype != np.float64 or values_N.ndim != 1:
        raise ValueError(f"want 1-D float64 values, got {values_N.ndim}-D {values_N.dtype}")
    spots = []
    for q in qs:
        virtual = (n - 1) * (float(q) / 100)
        lo = min(math.floor(virtual), n - 1)
        spots.append((virtual, lo, min(lo + 1, n - 1)))
    ranks = sorted({k for _, lo, hi in spots for k in (lo, hi)})
    at = dict(zip(ranks, select_ranks(values_N, ranks), strict=True))
    out = []
    for virtual, lo, hi in spots:
        a, b, t = at[lo], at[hi], virtual - lo
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)
    return out


def select_ranks(values_N: np.ndarray, ranks: Sequence[int]) -> list[float]:
    """The values at sorted positions ``ranks`` (ascending) of finite ``values_N`` (scratch).

    Exact for any input. Large arrays whose ranks lie close together (a percentile's
    two neighbours) are first narrowed to a bracket read off a sorted, evenly strided
    sample: one counting pass and one extracting pass, then a partition of the few
    thousand values inside; if the bracket misses (a skewed sample), the whole array is
    partitioned instead.
    """
    n = values_N.size
    if n > _BRACKET_MIN and ranks[-1] - ranks[0] < n // 64:
        sample_M = np.sort(values_N[:: n // _SAMPLE])
        m = sample_M.size
        lo = sample_M[max(ranks[0] * m // n - _MARGIN, 0)]
        hi = sample_M[min(ranks[-1] * m // n + _MARGIN, m - 1)]
        below = int(np.count_nonzero(values_N < lo))
        inside_K = values_N[(values_N >= lo) & (values_N <= hi)]
        if below <= ranks[0] and ranks[-1] < below + inside_K.size:
            shifted = [k - below for k in ranks]
            inside_K.partition(shifted)
            return [float(inside_K[k]) for k in shifted]
    values_N.partition(list(ranks))
    return [float(values_N[k]) for k in ranks]


# select_ranks' bracket: used above 65,536 values, from a ~4,096-value sample, widened by
# 64 sample positions each side (a binomial rank's standard deviation there is <= 32).
_BRACKET_MIN, _SAMPLE, _MARGIN = 2**16, 4096, 64


def fit_normalisation(
    depth_HW: np.ndarray,
    valid_HW: np.ndarray,
    space: str,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> Normalisation:
    """Fit the per-image affine map of ``space`` on the valid pixels.

    ``sqrt_disparity``: y = sqrt(1/z), the ``percentiles`` of valid y go to -1 and +1.
    ``scale_depth`` (official DepthART): 2 * z / q_hi(z) - 1, scale only (q_lo unused).
    """
    y = _forward_feature(depth_HW[np.asarray(valid_HW, dtype=bool)], space)
    return _fit_feature(y, space, percentiles)


def _fit_feature(y: np.ndarray, space: str, percentiles: tuple[float, float]) -> Normalisation:
    """:func:`fit_normalisation` from the feature of the valid pixels (scratch)."""
    y = y[np.isfinite(y)]
    if y.size == 0:
        raise ValueError("cannot normalise a depth map without any valid pixel")
    lo, hi = percentiles_of(y, percentiles)
    if space == "scale_depth":
        if hi <= 0:
            raise ValueError(f"scale_depth needs a positive upper percentile, got {hi}")
        return Normalisation(space, 2.0 / float(hi), -1.0)
    if hi - lo <= 1e-12 * max(abs(hi), 1.0):
        raise ValueError(f"degenerate depth map: percentiles {percentiles} of y coincide ({lo})")
    a = 2.0 / float(hi - lo)
    return Normalisation(space, a, -1.0 - a * float(lo))


def apply_normalisation(depth_HW: np.ndarray, norm: Normalisation) -> np.ndarray:
    """Map depth (metres, all pixels finite and > 0) to ``target_HW`` in [-1, 1] (float32)."""
    return _apply_feature(_forward_feature(depth_HW, norm.space), norm)


def _apply_feature(y_HW: np.ndarray, norm: Normalisation) -> np.ndarray:
    """The affine map of ``norm`` on the feature, clipped to [-1, 1] (float32)."""
    return np.clip(norm.a * y_HW + norm.b, -1.0, 1.0).astype(np.float32)


def invert_normalisation(target_HW: np.ndarray, norm: Normalisation) -> np.ndarray:
    """Depth in metres from a target; exact for pixels that were not clipped."""
    y_HW = (np.asarray(target_HW, dtype=np.float64) - norm.b) / norm.a
    if norm.space == "scale_depth":
        return y_HW.astype(np.float32)
    with np.errstate(divide="ignore"):
        return (1.0 / np.square(y_HW)).astype(np.float32)


def normalise_depth(
    depth_HW: np.ndarray,
    valid_HW: np.ndarray,
    space: str,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> tuple[np.ndarray, Normalisation]:
    """Fit on the valid pixels, apply to all pixels: ``(target_HW, params)``.

    The same numbers as :func:`fit_normalisation` then :func:`apply_normalisation`, with
    the feature (a float64 square root and division per pixel) computed once.
    """
    y_HW = _forward_feature(depth_HW, space)
    norm = _fit_feature(y_HW[np.asarray(valid_HW, dtype=bool)], space, percentiles)
    return _apply_feature(y_HW, norm), norm
