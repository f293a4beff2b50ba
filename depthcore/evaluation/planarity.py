"""The iBims-1 geometric metrics: planarity errors and depth boundary errors.

These follow the protocol of the iBims-1 evaluation (Koch et al., 2018):

* planarity: each annotated plane mask is first multiplied by the validity mask
  (the benchmark's valid pixels: not transparent, not invalid, depth present; and a
  finite, positive prediction), then a plane still covering >= 5% of the image is
  scaled by ``median(gt) / median(pred)`` inside it, back-projected with the
  intrinsics and fitted by PCA; ``pe_fla`` is 100 x the standard deviation of the
  point-to-plane distances (cm for metres), ``pe_ori`` the angle (deg) between the
  fitted and the annotated normal, whichever side it points to;
* depth boundary errors, as ``compute_depth_boundary_error`` of the iBims-1
  script: Canny edges of the min-max normalised prediction (sigma sqrt(2),
  thresholds 0.1 / 0.2); ``D_gt`` and ``D_est`` are the Euclidean distance
  transforms of the inverted GT and predicted edge maps. Accuracy is the mean
  ``D_gt`` over the predicted edges lying within 10 px of a GT edge (10 if there
  are none). Completeness is what the script computes (its comment: "sum of
  undirected chamfer distances"): ``(sum over predicted edges of min(D_gt, 10) +
  sum over GT edges of min(D_est, 10)) / (n_pred + n_gt)``. The paper's prose
  describes completeness as GT-to-prediction only; every published iBims-1 table
  comes from the script, so we follow the script. :func:`edge_distances` exposes
  both directed terms.

scikit-image is not a dependency, so :func:`canny` is implemented here on
scipy.ndimage. It differs from skimage's in one documented detail: the
non-maximum suppression compares against the two neighbours along the
gradient direction quantised to 0/45/90/135 degrees (textbook Canny) rather
than interpolating between neighbours.

Camera frame: OpenCV convention, x right, y down, z forward; pixel ``(row v,
col u)`` back-projects to ``((u - cx) z / fx, (v - cy) z / fy, z)`` with the
standard ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``. Annotated normals must
be given in that frame (the raw iBims files use x right, y forward, z up; the
reader converts).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from depthcore.geometry import backproject

#: A plane smaller than this fraction of the image is not scored (iBims-1).
MIN_PLANE_FRACTION = 0.05
#: Distance cap (px) of the depth boundary errors (iBims-1).
DBE_MAX_DIST = 10.0


def fit_plane(points_N3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PCA plane through ``points_N3``: ``(unit normal (3,), signed distances (N,))``."""
    centred_N3 = points_N3 - points_N3.mean(axis=0)
    _, _, vt_33 = np.linalg.svd(centred_N3, full_matrices=False)
    normal_3 = vt_33[-1]
    return normal_3, centred_N3 @ normal_3


def normal_angle_deg(a_3: np.ndarray, b_3: np.ndarray) -> float:
    """Angle in degrees between two plane normals, ignoring their sign (0..90)."""
    a = np.asarray(a_3, dtype=np.float64)
    b = np.asarray(b_3, dtype=np.float64)
    if np.dot(a, b) < 0:
        b = -b
    return float(np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b)), np.dot(a, b))))


def planarity(
    pred: np.ndarray,
    gt: np.ndarray,
    plane_masks: np.ndarray,
    plane_normals: np.ndarray,
    intrinsics: np.ndarray,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-plane ``(pe_fla_cm (P,), pe_ori_deg (P,))``; NaN for planes not scored.

    ``pred`` and ``gt`` are depth maps (H, W) (gt <= 0 or non-finite = missing),
    ``plane_masks`` (P, H, W) bool, ``plane_normals`` (P, 3) in the camera frame,
    ``valid`` (H, W) the benchmark's validity mask (iBims: not invalid, not
    transparent). Each plane mask is intersected with ``valid``, the depth present
    and a valid prediction BEFORE the 5% size test and the fit, as in iBims-1, so a
    plane half hidden behind glass is scored on its visible half or not at all.
    The benchmark value is the NaN-mean over all planes of all images.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    masks_PHW = np.asarray(plane_masks, dtype=bool)
    normals_P3 = np.asarray(plane_normals, dtype=np.float64).reshape(-1, 3)
    if masks_PHW.ndim != 3 or masks_PHW.shape[1:] != gt.shape or pred.shape != gt.shape:
        raise ValueError(
            f"shape mismatch: pred {pred.shape}, gt {gt.shape}, plane_masks {masks_PHW.shape}"
        )
    if normals_P3.shape[0] != masks_PHW.shape[0]:
        raise ValueError(f"{masks_PHW.shape[0]} plane masks but {normals_P3.shape[0]} normals")
    P = masks_PHW.shape[0]
    pe_fla_P = np.full(P, np.nan)
    pe_ori_P = np.full(P, np.nan)
    usable = np.isfinite(pred) & (pred > 0) & np.isfinite(gt) & (gt > 0)
    if valid is not None:
        if np.shape(valid) != gt.shape:
            raise ValueError(f"shape mismatch: valid {np.shape(valid)}, gt {gt.shape}")
        usable &= np.asarray(valid, dtype=bool)
    for j in range(P):
        pts = masks_PHW[j] & usable
        if pts.sum() < max(MIN_PLANE_FRACTION * pts.size, 3):
            continue
        scaled = pred * (np.median(gt[pts]) / np.median(pred[pts]))
        points_N3 = backproject(np.where(pts, scaled, 0.0), intrinsics)[pts]
        normal_3, dist_N = fit_plane(points_N3)
        pe_fla_P[j] = 100.0 * float(np.std(dist_N))
        pe_ori_P[j] = normal_angle_deg(normals_P3[j], normal_3)
    return pe_fla_P, pe_ori_P


def _nonmax_suppress(mag_HW: np.ndarray, gy_HW: np.ndarray, gx_HW: np.ndarray) -> np.ndarray:
    """True where the magnitude is a maximum along the quantised gradient direction.

    Ties are broken towards the pixel ahead (``>=`` ahead, ``>`` behind), so an
    edge exactly between two pixels comes out one pixel wide.
    """
    theta_HW = np.mod(np.degrees(np.arctan2(gy_HW, gx_HW)), 180.0)
    sector_HW = (np.floor((theta_HW + 22.5) / 45.0).astype(int)) % 4
    padded = np.pad(mag_HW, 1)
    H, W = mag_HW.shape
    keep = np.zeros_like(mag_HW, dtype=bool)
    for sector, (dr, dc) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        ahead = padded[1 + dr : 1 + dr + H, 1 + dc : 1 + dc + W]
        behind = padded[1 - dr : 1 - dr + H, 1 - dc : 1 - dc + W]
        is_max = (mag_HW >= ahead) & (mag_HW > behind)  # a 2-px plateau keeps one pixel
        keep |= (sector_HW == sector) & is_max
    return keep & (mag_HW > 0)


def canny(
    image_HW: np.ndarray,
    sigma: float = float(np.sqrt(2.0)),
    low_threshold: float = 0.1,
    high_threshold: float = 0.2,
    mask_HW: np.ndarray | None = None,
) -> np.ndarray:
    """Canny edges (bool (H, W)) with absolute thresholds on the Sobel magnitude.

    Gaussian smoothing is normalised by the smoothed mask so pixels outside
    ``mask_HW`` do not bleed in; edges are kept only inside the mask eroded by
    one pixel; hysteresis keeps 8-connected weak edges touching a strong one.
    """
    image = np.asarray(image_HW, dtype=np.float64)
    mask = np.ones(image.shape, bool) if mask_HW is None else np.asarray(mask_HW, bool)
    if mask.shape != image.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    filled = np.where(mask & np.isfinite(image), image, 0.0)
    weight = ndimage.gaussian_filter(mask.astype(np.float64), sigma, mode="constant")
    smooth = ndimage.gaussian_filter(filled, sigma, mode="constant") / np.maximum(weight, 1e-12)
    gy_HW = ndimage.sobel(smooth, axis=0)
    gx_HW = ndimage.sobel(smooth, axis=1)
    mag_HW = np.hypot(gy_HW, gx_HW)
    inner = ndimage.binary_erosion(mask, structure=np.ones((3, 3)), border_value=0)
    candidates = _nonmax_suppress(mag_HW, gy_HW, gx_HW) & inner
    weak = candidates & (mag_HW >= low_threshold)
    strong = candidates & (mag_HW >= high_threshold)
    labels_HW, count = ndimage.label(weak, structure=np.ones((3, 3)))
    if count == 0:
        return np.zeros(image.shape, bool)
    has_strong = np.zeros(count + 1, bool)
    has_strong[np.unique(labels_HW[strong])] = True
    has_strong[0] = False
    return has_strong[labels_HW]


def edge_distances(from_edges: np.ndarray, to_edges: np.ndarray) -> np.ndarray:
    """Distance (px) of every ``from_edges`` pixel to the nearest ``to_edges`` pixel, capped at 10.

    One directed term of the chamfer distance; an empty ``to_edges`` gives the cap.
    """
    from_b = np.asarray(from_edges, dtype=bool)
    to_b = np.asarray(to_edges, dtype=bool)
    if not to_b.any():
        return np.full(int(from_b.sum()), DBE_MAX_DIST)
    return np.minimum(ndimage.distance_transform_edt(~to_b)[from_b], DBE_MAX_DIST)


def edge_errors(edges_est: np.ndarray, edges_gt: np.ndarray) -> tuple[float, float]:
    """``(dbe_acc, dbe_com)`` of a predicted edge map against the GT edge map (module docstring).

    No GT edge gives (NaN, NaN); no predicted edge within 10 px of a GT edge gives (10, 10).
    """
    est = np.asarray(edges_est, dtype=bool)
    gt = np.asarray(edges_gt, dtype=bool)
    if est.shape != gt.shape:
        raise ValueError(f"shape mismatch: predicted edges {est.shape}, gt edges {gt.shape}")
    if not gt.any():
        return float("nan"), float("nan")
    est_to_gt = edge_distances(est, gt)  # D_gt on the predicted edges
    near = est_to_gt < DBE_MAX_DIST
    if not near.any():
        return DBE_MAX_DIST, DBE_MAX_DIST
    gt_to_est = edge_distances(gt, est)  # D_est on the GT edges
    acc = float(est_to_gt[near].mean())
    com = float((est_to_gt.sum() + gt_to_est.sum()) / (est_to_gt.size + gt_to_est.size))
    return acc, com


def boundary_errors(
    pred: np.ndarray, gt_edges: np.ndarray, mask: np.ndarray | None = None
) -> tuple[float, float]:
    """Depth boundary errors ``(dbe_acc, dbe_com)`` in pixels of a depth prediction (iBims-1).

    The prediction is min-max normalised over its valid pixels (finite, > 0, and
    ``mask``), passed through :func:`canny` and scored by :func:`edge_errors`.
    No ground-truth edge gives (NaN, NaN).
    """
    pred = np.asarray(pred, dtype=np.float64)
    edges_gt = np.asarray(gt_edges) > 0
    if pred.shape != edges_gt.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape}, gt_edges {edges_gt.shape}")
    valid = np.isfinite(pred) & (pred > 0)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    if not edges_gt.any() or not valid.any():
        return float("nan"), float("nan")
    lo, hi = pred[valid].min(), pred[valid].max()
    normalised = (pred - lo) / (hi - lo) if hi > lo else np.zeros_like(pred)
    return edge_errors(canny(normalised, mask_HW=valid), edges_gt)


__all__ = [
    "DBE_MAX_DIST",
    "MIN_PLANE_FRACTION",
    "boundary_errors",
    "canny",
    "edge_distances",
    "edge_errors",
    "fit_plane",
    "normal_angle_deg",
    "planarity",
]
