"""Write procedurally rendered scenes in the exact on-disk layout of Hypersim.

The embedded default pipeline must exercise the same code as a real run (the
selective zip downloader, the HDF5 reader, the lens-shift planar-depth
conversion, the split file, the frame filters), so the generator writes what
apple/ml-hypersim publishes: one ``ai_VVV_NNN.zip`` per scene holding
``images/scene_cam_XX_final_hdf5/frame.IIII.color.hdf5`` (float16 HDR),
``images/scene_cam_XX_geometry_hdf5/frame.IIII.{depth_meters,render_entity_id,
normal_cam}.hdf5``, ``images/scene_cam_XX_final_preview/frame.IIII.tonemap.jpg``
and ``_detail/`` metadata, plus the dataset-wide ``metadata_camera_parameters.csv``
and ``metadata_images_split_scene_v1.csv``. Scene names start at volume 100 so
they never collide with the real ``ai_001``..``ai_055``.

Deliberately bad frames (listed in ``synth_expected_drops.csv`` at the root):
``window`` views look out of a window from 0.5 m (mostly no surface: more than
3% invalid pixels) and ``flat_wall`` views face a wall from 0.3 m (depth range
below 0.5 m); both are in the public release and must be dropped by the
preprocess filters. ``excluded_frames`` extra frames are rendered from outside
the room and marked ``included_in_public_release=False`` in the split file,
as the real file does for bad trajectories.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import gzip
import io
import multiprocessing
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from depthcore.config import RangeError, frozen, param
from depthcore.data.hypersim.tables import CAMERA_FILE, SPLIT_COLUMNS, SPLIT_FILE
from depthcore.io import atomic_path, write_text_atomic
from depthcore.synth.closeups import add_clutter, sample_closeup_camera
from depthcore.synth.primitives import Rect
from depthcore.synth.render import Camera, Render, Scene, default_M_cam_from_uv, render
from depthcore.synth.scenes import Style, make_room, sample_camera

BAD_TRAJECTORY = "OUTSIDE VIEWING AREA (BAD TRAJECTORY)"
_ZIP_DATE = (2021, 1, 1, 0, 0, 0)
_UNITS = (0.0254, 0.01, 1.0)


@frozen
class SynthConfig:
    """The ``synth`` params section: what the embedded default Hypersim-format source holds.

    ``lens_shift_scenes`` scenes get off-centre intrinsics, all get a focal length
    jittered by up to ``focal_jitter``; ``window_views``/``flat_views``/``excluded_frames``
    are the deliberately bad frames of the module docstring; ``workers`` processes render.

    ``closeup_cameras`` of each scene's cameras (the last ones) look down at a furniture
    top from 0.4-1.2 m, and small objects then stand on the tops: the room cameras all
    look across the room from eye height, so without them a model never sees the
    close-range, downward views of counters and desks that real Hypersim trajectories
    (and desk benchmarks such as TUM) have. 0 renders exactly what it did before.
    """

    out_dir: str = "data/source/hypersim"
    n_scenes: int = param(8, gt=0)
    cameras_per_scene: int = param(2, gt=0)
    frames_per_camera: int = param(20, gt=0)
    height: int = param(128, ge=16)
    width: int = param(128, ge=16)
    seed: int = 0
    style: Style = "hypersim"
    val_scenes: int = param(1, ge=0)
    test_scenes: int = param(1, ge=0)
    lens_shift_scenes: int = param(2, ge=0)
    focal_jitter: float = param(0.1, ge=0, lt=1)
    exposure_range: tuple[float, float] = param((0.2, 5.0), gt=0)
    window_views: int = param(2, ge=0)
    flat_views: int = param(1, ge=0)
    excluded_frames: int = param(2, ge=0)
    workers: int = param(1, gt=0)
    closeup_cameras: int = param(0, ge=0)

    def __post_init__(self) -> None:
        if self.closeup_cameras > self.cameras_per_scene:
            raise RangeError(
                "closeup_cameras",
                f"{self.closeup_cameras} exceeds cameras_per_scene ({self.cameras_per_scene})",
            )
        if self.val_scenes + self.test_scenes >= self.n_scenes:
            raise ValueError("val_scenes + test_scenes must leave at least one training scene")
        if self.window_views + self.flat_views > self.n_scenes - self.val_scenes - self.test_scenes:
            raise ValueError("window_views + flat_views exceed the number of training scenes")


@dataclass(frozen=True)
class _Frame:
    camera: str
    frame_id: int
    cam: Camera
    kind: str  # "normal", "window", "flat_wall", "excluded"


def scene_name(index: int) -> str:
    """``ai_VVV_NNN`` for the ``index``-th synthetic scene (volumes from 100 up)."""
    return f"ai_{100 + index // 10:03d}_{index % 10 + 1:03d}"


def scene_M_cam_from_uv(  # noqa: N802
    cfg: SynthConfig, rng: np.random.Generator, lens_shift: bool
) -> np.ndarray:
    """A per-scene intrinsics matrix: 60 deg nominal fov, some focal jitter, optional lens shift."""
    M = default_M_cam_from_uv(cfg.width, cfg.height)
    M[:2, :2] *= 1.0 + rng.uniform(-cfg.focal_jitter, cfg.focal_jitter)
    if lens_shift:
        M[0, 2], M[1, 2] = rng.uniform(-0.1, 0.1), rng.uniform(-0.12, 0.12)
    return M


def _facing_wall(scene: Scene, M: np.ndarray, wall: Rect, s: float, q: float, gap: float) -> Camera:
    """A camera ``gap`` metres in front of point (s, q) of ``wall``, looking straight at it."""
    u, v = np.asarray(wall.u_axis, float), np.asarray(wall.v_axis, float)
    point = np.asarray(wall.origin, float) + s * u / np.linalg.norm(u) + q * v / np.linalg.norm(v)
    n = np.cross(u, v)
    n /= np.linalg.norm(n)
    centre = (np.asarray(scene.eye_min) + np.asarray(scene.eye_max)) / 2
    if np.dot(centre - point, n) < 0:
        n = -n
    return Camera.look_at(point + gap * n, point, M)


def _special_camera(scene: Scene, M: np.ndarray, rng: np.random.Generator, kind: str) -> Camera:
    """A deliberately bad view: through a window, against a wall, or from outside the room."""
    walls = [o for o in scene.objects if isinstance(o, Rect) and o.label == "wall"]
    if kind == "window":
        if not scene.openings:
            raise ValueError(f"a {scene.style} scene without open windows cannot give window views")
        centre, inward = scene.openings[int(rng.integers(len(scene.openings)))]
        eye = np.asarray(centre) + 1.5 * np.asarray(inward)
        return Camera.look_at(eye, centre, M)
    if kind == "flat_wall":
        wall = walls[int(rng.integers(len(walls)))]
        length = float(np.linalg.norm(wall.u_axis))
        for _ in range(50):
            s, q = rng.uniform(0.5, length - 0.5), rng.uniform(0.5, 1.5)
            if not any(s0 - 0.5 < s < s1 + 0.5 for s0, _, s1, _ in wall.holes):
                break
        return _facing_wall(scene, M, wall, s, q, 0.3)
    lo, hi = np.asarray(scene.eye_min), np.asarray(scene.eye_max)
    eye = np.array(
        [hi[0] + 2 * (hi[0] - lo[0]) + 3.0, rng.uniform(lo[1], hi[1]), rng.uniform(2, 4)]
    )
    return Camera.look_at(eye, (lo + hi) / 2, M)


def _frames(
    cfg: SynthConfig, index: int, scene: Scene, M: np.ndarray, rng: np.random.Generator
) -> list[_Frame]:
    """Every frame of one scene with its camera; the special views go last in ``cam_00``
    (even when it is a close-up camera), the close-up cameras last of all."""
    n_train = cfg.n_scenes - cfg.val_scenes - cfg.test_scenes
    first_closeup = cfg.cameras_per_scene - cfg.closeup_cameras
    frames = []
    for c in range(cfg.cameras_per_scene):
        for f in range(cfg.frames_per_camera):
            kind = "normal"
            last = c == 0 and f == cfg.frames_per_camera - 1
            if last and index < cfg.window_views:
                kind = "window" if scene.openings else "flat_wall"  # no open window: a wall
            elif last and cfg.window_views <= index < cfg.window_views + cfg.flat_views:
                kind = "flat_wall"
            if c >= first_closeup:
                cam = sample_closeup_camera(rng, scene, M)
            else:
                cam = sample_camera(rng, scene, M)
            if kind != "normal":
                cam = _special_camera(scene, M, rng, kind)
            frames.append(_Frame(f"cam_{c:02d}", f, cam, kind))
    if index == n_train - 1:  # the last training scene gets the excluded frames
        name = f"cam_{cfg.cameras_per_scene:02d}"
        for f in range(cfg.excluded_frames):
            frames.append(_Frame(name, f, _special_camera(scene, M, rng, "excluded"), "excluded"))
    return frames


def _hdf5_bytes(array: np.ndarray) -> bytes:
    """One HDF5 file holding ``dataset``, gzip-compressed and chunked in 8x8 tiles like the
    real files (768x1024 frames come in 96x128 chunks)."""
    chunks = (max(1, array.shape[0] // 8), max(1, array.shape[1] // 8), *array.shape[2:])
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset(
            "dataset", data=array, chunks=chunks, compression="gzip", compression_opts=9
        )
    return buf.getvalue()


def _tonemap_jpeg(out: Render) -> bytes:
    """The preview JPEG that real zips carry (same tone map as the Hypersim authors' script)."""
    valid_HW = out.entity_HW != -1
    brightness_HW = out.hdr_HW3 @ np.array([0.3, 0.59, 0.11], np.float32)
    p90 = float(np.percentile(brightness_HW[valid_HW], 90)) if valid_HW.any() else 1.0
    scale = 0.8**2.2 / p90 if p90 >= 1e-4 else 0.0
    rgb_HW3 = np.clip(np.maximum(scale * out.hdr_HW3, 0) ** (1 / 2.2), 0, 1)
    buf = io.BytesIO()
    Image.fromarray((rgb_HW3 * 255).round().astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _put(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def _write_scene_zip(
    path: Path,
    name: str,
    scene: Scene,
    frames: list[_Frame],
    cfg: SynthConfig,
    units: float,
    rng: np.random.Generator,
) -> None:
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        _put(
            zf,
            f"{name}/_detail/metadata_scene.csv",
            f"parameter_name,parameter_value\nmeters_per_asset_unit,{units}\n".encode(),
        )
        poses: dict[str, list[Camera]] = {}
        for fr in frames:
            poses.setdefault(fr.camera, []).append(fr.cam)
            exposure = float(np.exp(rng.uniform(*np.log(cfg.exposure_range))))
            out = render(
                scene,
                fr.cam,
                cfg.height,
                cfg.width,
                exposure=exposure,
                seed=int(rng.integers(2**31)),
            )
            stem = f"frame.{fr.frame_id:04d}"
            img = f"{name}/images/scene_{fr.camera}"
            _put(
                zf,
                f"{img}_final_hdf5/{stem}.color.hdf5",
                _hdf5_bytes(out.hdr_HW3.astype(np.float16)),
            )
            _put(zf, f"{img}_final_preview/{stem}.tonemap.jpg", _tonemap_jpeg(out))
            geo = f"{img}_geometry_hdf5/{stem}"
            _put(zf, f"{geo}.depth_meters.hdf5", _hdf5_bytes(out.distance_HW.astype(np.float16)))
            _put(zf, f"{geo}.render_entity_id.hdf5", _hdf5_bytes(out.entity_HW.astype(np.int16)))
            _put(zf, f"{geo}.normal_cam.hdf5", _hdf5_bytes(out.normal_HW3.astype(np.float16)))
        for cam_name, cams in poses.items():
            R = np.stack([c.R_world_from_cam for c in cams]).astype(np.float64)
            pos = np.stack([c.position for c in cams]).astype(np.float64) / units
            for what, arr in (("orientations", R), ("positions", pos)):
                buf = io.BytesIO()
                with h5py.File(buf, "w") as f:
                    f.create_dataset("dataset", data=arr)
                _put(zf, f"{name}/_detail/{cam_name}/camera_keyframe_{what}.hdf5", buf.getvalue())


def _camera_table_template() -> tuple[list[str], dict[str, str]]:
    """The real camera table's columns and its default-camera row (ai_001_001)."""
    res = resources.files("depthcore.resources").joinpath(f"hypersim/{CAMERA_FILE}.gz")
    with res.open("rb") as raw, gzip.open(raw, "rt", newline="") as text:
        reader = csv.DictReader(text)
        row = next(reader)
        return list(reader.fieldnames or []), row


def _camera_row(
    template: dict[str, str], name: str, M: np.ndarray, cfg: SynthConfig, units: float
) -> dict[str, str]:
    row = dict(template, scene_name=name)
    row["settings_output_img_height"] = f"{float(cfg.height)}"
    row["settings_output_img_width"] = f"{float(cfg.width)}"
    row["settings_units_info_meters_scale"] = repr(units)
    for i in range(3):
        for j in range(3):
            row[f"M_cam_from_uv_{i}{j}"] = repr(float(M[i, j]))
    near_far = {"M_proj_22": -1.002002002002002, "M_proj_23": -2.002002002002002, "M_proj_32": -1.0}
    proj = {
        "M_proj_00": 1 / M[0, 0],
        "M_proj_11": 1 / M[1, 1],
        "M_proj_02": M[0, 2] / M[0, 0],
        "M_proj_12": M[1, 2] / M[1, 1],
        **near_far,
    }
    for i in range(4):
        for j in range(4):
            row[f"M_proj_{i}{j}"] = repr(float(proj.get(f"M_proj_{i}{j}", 0.0)))
    return row


def _csv_text(columns: list[str] | tuple[str, ...], rows: list[dict[str, object]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


@dataclass(frozen=True)
class _SceneRows:
    camera_row: dict[str, str]
    split_rows: list[dict[str, object]]
    drops: list[dict[str, object]]


def _make_scene(
    out: Path, cfg: SynthConfig, index: int, lens_shift: bool, template: dict[str, str]
) -> _SceneRows:
    """Render and write one scene zip; return its rows of the dataset-wide tables.

    ``template`` is the real camera table's default row (read once by the caller).
    """
    rng = np.random.default_rng([cfg.seed, index])
    name = scene_name(index)
    n_train = cfg.n_scenes - cfg.val_scenes - cfg.test_scenes
    partition = (
        "train" if index < n_train else "val" if index < n_train + cfg.val_scenes else "test"
    )
    units = _UNITS[int(rng.integers(len(_UNITS)))]
    M = scene_M_cam_from_uv(cfg, rng, lens_shift)
    scene = make_room(rng, cfg.style)
    if cfg.closeup_cameras:  # own stream: the room and its other draws stay as without
        scene = add_clutter(np.random.default_rng([cfg.seed, index, 1]), scene)
    frames = _frames(cfg, index, scene, M, rng)
    _write_scene_zip(out / f"{name}.zip", name, scene, frames, cfg, units, rng)
    split_rows: list[dict[str, object]] = []
    drops: list[dict[str, object]] = []
    for fr in frames:
        excluded = fr.kind == "excluded"
        values = (
            name,
            fr.camera,
            fr.frame_id,
            not excluded,
            BAD_TRAJECTORY if excluded else "",
            "" if excluded else partition,
        )
        split_rows.append(dict(zip(SPLIT_COLUMNS, values, strict=True)))
        if fr.kind in ("window", "flat_wall"):
            drops.append(
                {
                    "scene_name": name,
                    "camera_name": fr.camera,
                    "frame_id": fr.frame_id,
                    "reason": fr.kind,
                }
            )
    return _SceneRows(_camera_row(template, name, M, cfg, units), split_rows, drops)


def generate_hypersim(out_dir: str | Path, cfg: SynthConfig) -> list[Path]:
    """Render ``cfg.n_scenes`` scenes into ``out_dir`` in the Hypersim layout; return the zips.

    Deterministic in ``cfg.seed`` whatever ``cfg.workers`` (each scene has its own
    random stream, so a scene does not change when ``n_scenes`` grows either).
    Scenes render in ``cfg.workers`` processes; every file is written atomically.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns, template = _camera_table_template()
    order = np.random.default_rng([cfg.seed, 999]).permutation(cfg.n_scenes)
    shift = set(order[: cfg.lens_shift_scenes].tolist())
    jobs = [(out, cfg, i, i in shift, template) for i in range(cfg.n_scenes)]
    if cfg.workers > 1:
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        with cf.ProcessPoolExecutor(min(cfg.workers, cfg.n_scenes), mp_context=ctx) as pool:
            rows = list(pool.map(_make_scene, *zip(*jobs, strict=True)))
    else:
        rows = [_make_scene(*job) for job in jobs]
    split_rows = [r for scene in rows for r in scene.split_rows]
    drops = [d for scene in rows for d in scene.drops]
    write_text_atomic(out / CAMERA_FILE, _csv_text(columns, [r.camera_row for r in rows]))
    write_text_atomic(out / SPLIT_FILE, _csv_text(SPLIT_COLUMNS, split_rows))
    write_text_atomic(
        out / "synth_expected_drops.csv",
        _csv_text(("scene_name", "camera_name", "frame_id", "reason"), drops),
    )
    return [out / f"{scene_name(i)}.zip" for i in range(cfg.n_scenes)]
