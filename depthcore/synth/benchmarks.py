"""Small rendered stand-ins for the four zero-shot benchmarks, in their real on-disk formats.

Each set is a distribution shift away from the Hypersim-like training rooms,
rendered by :mod:`depthcore.synth.render` from :func:`depthcore.synth.scenes.make_room`
scenes and written by :mod:`depthcore.synth.bench_formats`, so the readers in
:mod:`depthcore.data` read them exactly as they read the real data:

- ``nyu``: small cluttered rooms, Kinect intrinsics, a white undistortion frame
  around the image (what the 8 px crop removes), filled ``depths`` and holey
  ``rawDepths``; a 1-based test split that skips some frames.
- ``tum``: desk close-ups as short handheld sequences, unsynchronised colour
  and depth timestamps (jitter below the 0.02 s association limit, plus one
  unpaired frame of each kind), depth quantised to 1/5000 m, sensor holes = 0.
- ``eth3d``: large halls with far depth, several DSLR views per hall, inf where
  rays leave through skylights and open ends and where the laser saw nothing.
- ``ibims``: rooms whose wall, floor and table-top planes are annotated from the
  scene geometry itself, so masks and normals are exact ground truth for the
  planarity metrics; openings are the transparent mask, edges are the depth
  discontinuities.

Sizes are parameters; the defaults (8 frames at 96x128) take about a second per set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from depthcore.config import frozen, param
from depthcore.data.benchmarks.ibims import PLANE_TYPES
from depthcore.data.benchmarks.nyu import nyu_intrinsics
from depthcore.data.benchmarks.tum import tum_intrinsics
from depthcore.data.hypersim.reader import tone_map
from depthcore.data.transforms import infill_nearest
from depthcore.errors import DepthcoreError
from depthcore.io import atomic_path
from depthcore.synth import bench_formats as fmt
from depthcore.synth.render import (
    Camera,
    PlaneInfo,
    Render,
    Scene,
    pinhole_M_cam_from_uv,
    render,
)
from depthcore.synth.scenes import make_room, sample_camera

BENCHMARKS = ("nyu", "ibims", "tum", "eth3d")
FRAMES_PER_SCENE = 4  # TUM sequence length / ETH3D views per hall
MIN_SURFACE_FRACTION = 0.5  # a view that mostly sees sky is re-drawn
MIN_PLANE_FRACTION = 0.005  # an annotator skips slivers
MIN_PLANAR_VIEW = 0.4  # iBims views look at walls, floors and tables, not into a cupboard
# Scene label of each iBims plane type -> the face that counts (None: the whole object).
IBIMS_FACES: dict[str, str | None] = {"wall": None, "floor": None, "table": "top"}


@frozen
class BenchmarksConfig:
    """The ``benchmarks`` section: the embedded zero-shot benchmark sets to generate."""

    out_dir: str = "data/benchmarks"  # writes <out_dir>/<name>/ in that dataset's real format
    names: tuple[str, ...] = ("nyu", "ibims", "tum", "eth3d")
    images: int = param(48, gt=0)  # frames per benchmark (enough for paired bootstrap CIs)
    seed: int = 1000  # distinct from the training scenes' seeds: zero-shot
    height: int = param(96, ge=16)
    width: int = param(128, ge=16)


class Shot(NamedTuple):
    """One rendered view: its camera, the render and the tone-mapped 8-bit image."""

    camera: Camera
    out: Render
    rgb_HW3: np.ndarray  # noqa: N815 - uint8, tone-mapped


def _shoot(
    rng: np.random.Generator,
    scene: Scene,
    K_33: np.ndarray,
    height: int,
    width: int,
    camera: Camera | None = None,
    accept: Callable[[Render], bool] | None = None,
) -> Shot:
    """Render ``scene`` through ``camera``, or through a sampled camera that sees enough
    surface and passes ``accept`` (re-drawn up to 20 times, then the last one is kept)."""
    M = pinhole_M_cam_from_uv(K_33[0, 0], K_33[1, 1], K_33[0, 2], K_33[1, 2], width, height)
    for _ in range(20):
        cam = camera if camera is not None else sample_camera(rng, scene, M)
        out = render(scene, cam, height, width, shadow_samples=2, seed=int(rng.integers(2**31)))
        surface_HW = np.isfinite(out.planar_HW)
        if camera is not None or (
            surface_HW.mean() >= MIN_SURFACE_FRACTION and (accept is None or accept(out))
        ):
            break
    return Shot(cam, out, tone_map(out.hdr_HW3, surface_HW))


def _holes(rng: np.random.Generator, height: int, width: int, fraction: float) -> np.ndarray:
    """Blocky random dropouts (sensor shadows, missed laser returns) covering ~``fraction``."""
    cells_hw = (height + 3) // 4, (width + 3) // 4
    coarse = rng.random(cells_hw) < fraction
    return np.kron(coarse, np.ones((4, 4), bool))[:height, :width]


# ----- NYUv2 --------------------------------------------------------------------------------------
def _nyu(out_dir: Path, n: int, rng: np.random.Generator, height: int, width: int) -> None:
    n_frames = n + max(1, n // 4)
    test_ndxs = sorted(int(k) for k in rng.choice(np.arange(1, n_frames + 1), n, replace=False))
    K_33 = nyu_intrinsics(height, width)
    border = max(1, round(8 * width / 640))
    rgbs, depths, raws = [], [], []
    for _ in range(n_frames):
        shot = _shoot(rng, make_room(rng, "nyu"), K_33, height, width)
        rgb_HW3 = shot.rgb_HW3.copy()
        rgb_HW3[:border], rgb_HW3[-border:], rgb_HW3[:, :border], rgb_HW3[:, -border:] = (255,) * 4
        planar_HW = shot.out.planar_HW
        raw_HW = np.where(_holes(rng, height, width, 0.05), np.nan, planar_HW)
        rgbs.append(rgb_HW3)
        depths.append(infill_nearest(planar_HW, np.isfinite(planar_HW)))  # NYU's are filled
        raws.append(np.nan_to_num(raw_HW, nan=0.0))
    fmt.write_nyu_set(out_dir, np.stack(rgbs), np.stack(depths), np.stack(raws), test_ndxs)


# ----- iBims-1 ------------------------------------------------------------------------------------
def _to_ibims_frame(v_3: np.ndarray) -> np.ndarray:
    """Renderer camera frame (x right, y up, z back) -> iBims (x right, y forward, z up)."""
    return np.array([v_3[0], -v_3[2], v_3[1]])


def _is_annotated(plane: PlaneInfo) -> bool:
    return plane.label in IBIMS_FACES and IBIMS_FACES[plane.label] in (None, plane.face)


def _ibims_planes(shot: Shot, scene: Scene) -> dict[str, np.ndarray]:
    """Label images and paras rows per plane type, from the scene's exact plane geometry.

    A paras row is ``[point (3), offset d, normal (3)]`` in the iBims frame with
    ``normal . X + d = 0`` and the normal facing the camera; readers use columns 4:7.
    """
    R = np.asarray(shot.camera.R_world_from_cam)
    eye_3 = np.asarray(shot.camera.position)
    plane_id_HW = shot.out.plane_id_HW
    min_pixels = MIN_PLANE_FRACTION * plane_id_HW.size
    fields = {}
    for kind in PLANE_TYPES:
        labels_HW = np.zeros(plane_id_HW.shape, np.uint8)
        rows = []
        for plane in scene.planes():
            if plane.label != kind or not _is_annotated(plane):
                continue
            mask_HW = plane_id_HW == plane.plane_id
            if mask_HW.sum() < min_pixels:
                continue
            normal_3 = R.T @ plane.normal_3
            point_3 = R.T @ (plane.point_3 - eye_3)
            if normal_3 @ point_3 > 0:
                normal_3 = -normal_3
            n_ib, p_ib = _to_ibims_frame(normal_3), _to_ibims_frame(point_3)
            rows.append(np.concatenate([p_ib, [-(n_ib @ p_ib)], n_ib]))
            labels_HW[mask_HW] = len(rows)
        fields[f"mask_{kind}"] = labels_HW
        fields[f"mask_{kind}_paras"] = np.array(rows, np.float64).reshape(-1, 7)
    return fields


def _depth_edges(depth_HW: np.ndarray, jump: float = 0.08) -> np.ndarray:
    """Occlusion boundaries: both pixels of a relative depth jump above ``jump``."""
    edges_HW = np.zeros(depth_HW.shape, bool)
    for axis in (0, 1):
        a_HW, b_HW = np.moveaxis(depth_HW, axis, 0)[:-1], np.moveaxis(depth_HW, axis, 0)[1:]
        with np.errstate(invalid="ignore"):
            step = np.abs(a_HW - b_HW) > jump * np.fmin(a_HW, b_HW)
        view = np.moveaxis(edges_HW, axis, 0)
        view[:-1] |= step
        view[1:] |= step
    return edges_HW


def _ibims(out_dir: Path, n: int, rng: np.random.Generator, height: int, width: int) -> None:
    names = [f"room_{k:02d}" for k in range(n)]
    for name in names:
        f = rng.uniform(0.82, 0.9) * width  # ~60 deg horizontal field of view
        K_33 = np.array(
            [
                [f, 0.0, (width - 1) / 2 + rng.uniform(-2, 2)],
                [0.0, f * rng.uniform(0.99, 1.01), (height - 1) / 2 + rng.uniform(-2, 2)],
                [0.0, 0.0, 1.0],
            ]
        )
        scene = make_room(rng, "ibims")
        plane_ids = [p.plane_id for p in scene.planes() if _is_annotated(p)]

        def planar_view(out: Render, ids: list[int] = plane_ids) -> bool:
            # iBims views show annotated planes and at least one occlusion boundary,
            # so the depth-boundary errors are defined for every frame.
            planar = np.isin(out.plane_id_HW, ids).mean() >= MIN_PLANAR_VIEW
            return bool(planar and _depth_edges(out.planar_HW).any())

        shot = _shoot(rng, scene, K_33, height, width, accept=planar_view)
        planar_HW = shot.out.planar_HW
        opening_HW = ~np.isfinite(planar_HW)  # seen through a window: "transparent"
        dropout_HW = _holes(rng, height, width, 0.02)
        depth_HW = np.where(opening_HW | dropout_HW, 0.0, planar_HW).astype(np.float32)
        fields = {
            "rgb": shot.rgb_HW3,
            "depth": depth_HW,
            "edges": _depth_edges(planar_HW).astype(np.uint8),
            "calib": fmt.ibims_calib(K_33),
            "mask_invalid": (~_holes(rng, height, width, 0.01)).astype(np.uint8),
            "mask_transp": (~opening_HW).astype(np.uint8),
            **_ibims_planes(shot, scene),
        }
        fmt.write_ibims_frame(out_dir, name, fields)
    fmt.write_ibims_list(out_dir, names)


# ----- TUM RGB-D ----------------------------------------------------------------------------------
def _handheld(start: Camera, s: float, drift_3: np.ndarray, turn_3: np.ndarray) -> Camera:
    """The camera ``s`` frames along a steady drift (m/frame) and turn from ``start``."""
    forward_3 = -np.asarray(start.R_world_from_cam)[:, 2]
    eye_3 = np.asarray(start.position) + s * drift_3
    return Camera.look_at(eye_3, eye_3 + forward_3 + s * turn_3, start.M_cam_from_uv)


def _tum(out_dir: Path, n: int, rng: np.random.Generator, height: int, width: int) -> None:
    K_33 = tum_intrinsics(height, width)
    for seq, first in enumerate(range(0, n, FRAMES_PER_SCENE)):
        count = min(FRAMES_PER_SCENE, n - first)
        scene = make_room(rng, "tum")
        start = _shoot(rng, scene, K_33, height, width).camera
        t0 = 1305031452.0 + 100.0 * seq
        drift_3, turn_3 = rng.normal(0.0, 0.01, 3), rng.normal(0.0, 0.01, 3)
        rgb_frames, depth_frames = [], []
        # frame -1 has depth only and frame `count` colour only: nothing to pair them with
        for k in range(-1, count + 1):
            camera = _handheld(start, k + 1.0, drift_3, turn_3)
            shot = _shoot(rng, scene, K_33, height, width, camera)
            t = t0 + k / 30.0
            if k < count:
                depth_HW = np.where(_holes(rng, height, width, 0.03), 0.0, shot.out.planar_HW)
                depth_frames.append((t + rng.uniform(-0.008, 0.008), depth_HW))
            if k >= 0:
                rgb_frames.append((t + rng.uniform(-0.004, 0.004), shot.rgb_HW3))
        seq_dir = out_dir / f"rgbd_dataset_freiburg1_synth{seq:02d}"
        fmt.write_tum_sequence(seq_dir, rgb_frames, depth_frames)


# ----- ETH3D --------------------------------------------------------------------------------------
def _eth3d(out_dir: Path, n: int, rng: np.random.Generator, height: int, width: int) -> None:
    f = 0.56 * width  # the DSLR's ~83 deg horizontal field of view
    K_33 = np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])
    for hall, first in enumerate(range(0, n, FRAMES_PER_SCENE)):
        scene = make_room(rng, "eth3d")
        for k in range(min(FRAMES_PER_SCENE, n - first)):
            shot = _shoot(rng, scene, K_33, height, width)
            missed_HW = _holes(rng, height, width, 0.04)
            depth_HW = np.where(missed_HW, np.inf, np.nan_to_num(shot.out.planar_HW, nan=np.inf))
            image = f"DSC_{1000 + first + k:04d}.JPG"
            fmt.write_eth3d_frame(out_dir, f"hall_{hall:02d}", image, shot.rgb_HW3, depth_HW)


_GENERATORS: dict[str, Callable[[Path, int, np.random.Generator, int, int], None]] = {
    "nyu": _nyu,
    "ibims": _ibims,
    "tum": _tum,
    "eth3d": _eth3d,
}


def generate_benchmark(
    name: str,
    out_dir: str | Path,
    n: int = 8,
    seed: int = 0,
    height: int = 96,
    width: int = 128,
) -> Path:
    """Render ``n`` frames of benchmark ``name`` into ``out_dir`` in its real format.

    Deterministic in ``seed``; the folder appears atomically (a failure leaves any
    previous set untouched). Returns ``out_dir``; read it with
    ``depthcore.data.benchmarks.registry.make_reader(name, out_dir)``.
    """
    if name not in _GENERATORS:
        raise DepthcoreError(f"unknown benchmark {name!r}; choose one of {sorted(_GENERATORS)}")
    if n < 1 or height < 16 or width < 16:
        raise DepthcoreError(
            f"{name}: need n >= 1 and a size of at least 16x16, got {n}, {height}x{width}"
        )
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        _GENERATORS[name](tmp, n, rng, height, width)
    return out_dir


def generate_benchmarks(cfg: BenchmarksConfig) -> dict[str, int]:
    """The benchmarks stage: every configured set under ``cfg.out_dir``, written atomically."""
    counts = {}
    with atomic_path(cfg.out_dir) as tmp:
        for i, name in enumerate(cfg.names):
            generate_benchmark(
                name, tmp / name, cfg.images, cfg.seed + 100 * i, height=cfg.height,
                width=cfg.width,
            )  # fmt: skip
            counts[name] = cfg.images
    return counts
