"""Hypersim download folder (and your own folders) -> filtered, normalised HDF5 shards + tables.

The official split file decides each frame's split; frames outside the public
release and frames failing the quality filters are listed in ``dropped.csv`` with
the reason. Scenes are processed in parallel processes, each into its own scratch
file; the shards are then assembled in key order, so the output does not depend
on the number of workers. The whole output folder appears atomically.

``folders`` adds folder datasets (:mod:`depthcore.data.folder`) next to Hypersim, or
instead of it (``hypersim: false``): each folder is one more "scene" whose frames take
the split of their manifest row and go through the same resizing, filters and
normalisation; their keys are ``<name>/<frame>``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from depthcore.config import frozen, param, to_dict
from depthcore.data import folder as folder_data
from depthcore.data.hypersim.reader import FrameId, find_frames, load_frame
from depthcore.data.hypersim.tables import camera_matrix, load_camera_table, load_split_table
from depthcore.data.shards import FrameArrays, ShardWriter, read_frame
from depthcore.data.transforms import infill_nearest, normalise_depth, resize_depth, resize_rgb
from depthcore.errors import DataError
from depthcore.io import atomic_path

log = logging.getLogger(__name__)

STATS_COLUMNS = (
    "key", "scene", "camera", "frame", "split", "shard", "index", "height", "width",
    "valid_frac", "depth_min", "depth_max", "target_min", "target_max", "target_finite",
    "rgb_min", "rgb_max", "norm_a", "norm_b",
)  # fmt: skip
DROPPED_COLUMNS = ("key", "scene", "camera", "frame", "split", "reason", "value", "detail")


@frozen
class FilterConfig:
    """Marigold maintainers' quality filters, applied to the frame as stored."""

    max_invalid_frac: float = param(0.03, ge=0, le=1)
    min_depth_range: float = param(0.5, ge=0)  # metres, over valid pixels
    min_rgb_range: float = param(10.0 / 255.0, ge=0, le=1)  # of the tone-mapped colour, in [0, 1]


@frozen
class FolderSourceConfig:
    """One folder dataset to train on: its key prefix and where it lives."""

    name: str
    root: str

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"folder source name must be non-empty without '/', got {self.name!r}")


@frozen
class PreprocessConfig:
    """The ``preprocess`` section of params.yaml."""

    in_dir: str = "data/raw/hypersim"
    out_dir: str = "data/processed"
    resolution: tuple[int, int] = param((64, 64), gt=0)  # (H, W) of the stored frames
    space: Literal["sqrt_disparity", "scale_depth"] = "sqrt_disparity"
    percentiles: tuple[float, float] = param((2.0, 98.0), ge=0, le=100)
    depth_resize: Literal["nearest", "masked_area"] = "nearest"
    filters: FilterConfig = field(default_factory=FilterConfig)
    shard_size: int = param(256, gt=0)
    workers: int = param(2, gt=0)
    splits: tuple[str, ...] = ("train", "val", "test")
    hypersim: bool = True  # false: train on the folders alone
    folders: tuple[FolderSourceConfig, ...] = ()

    def __post_init__(self) -> None:
        if not self.hypersim and not self.folders:
            raise ValueError("hypersim: false needs at least one entry in folders")
        names = [f.name for f in self.folders]
        if len(set(names)) != len(names):
            raise ValueError(f"folder source names must be unique, got {names}")
        lo, hi = self.percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= lo < hi <= 100, got {lo}, {hi}")
        if not self.splits:
            raise ValueError("splits must name at least one split")


@dataclass(frozen=True)
class SceneJob:
    """Everything a worker needs for one scene (picklable)."""

    in_dir: str
    scene: str
    frames: tuple[tuple[FrameId, str], ...]  # (frame, split), sorted
    M_cam_from_uv: np.ndarray
    scratch: str
    cfg: PreprocessConfig

    def items(self) -> Iterator[tuple[dict[str, Any], Callable[[], RawFrame]]]:
        for frame, split in self.frames:
            yield _ident(frame, split), _HypersimLoader(self.in_dir, frame, self.M_cam_from_uv)


@dataclass(frozen=True)
class FolderJob:
    """One folder dataset, processed like a scene (picklable)."""

    scene: str  # the source name: key prefix and scratch folder
    frames: tuple[tuple[int, folder_data.FolderFrame], ...]  # (index in manifest, frame)
    scratch: str
    cfg: PreprocessConfig

    def items(self) -> Iterator[tuple[dict[str, Any], Callable[[], RawFrame]]]:
        for index, frame in self.frames:
            ident = {
                "key": f"{self.scene}/{frame.name}",
                "scene": self.scene,
                "camera": "folder",
                "frame": index,
                "split": frame.split,
            }
            yield ident, _FolderLoader(frame)


RawFrame = tuple[np.ndarray, np.ndarray, np.ndarray]  # rgb_HW3, depth_HW, valid_HW


@dataclass(frozen=True)
class _HypersimLoader:
    in_dir: str
    frame: FrameId
    M_cam_from_uv: np.ndarray

    def __call__(self) -> RawFrame:
        raw = load_frame(self.in_dir, self.frame, self.M_cam_from_uv)
        return raw.rgb_HW3, raw.depth_HW, raw.valid_HW


@dataclass(frozen=True)
class _FolderLoader:
    frame: folder_data.FolderFrame

    def __call__(self) -> RawFrame:
        return folder_data.load_frame(self.frame)


@dataclass
class SceneResult:
    stats: list[dict[str, Any]]  # one per kept frame, shard/index still scratch-relative
    dropped: list[dict[str, Any]]


def prepare_frame(
    in_dir: str | Path, frame: FrameId, M_cam_from_uv: np.ndarray, cfg: PreprocessConfig
) -> tuple[FrameArrays | None, dict[str, Any]]:
    """Read, resize, filter, infill and normalise one frame.

    Returns the stored arrays and their statistics, or ``(None, {"reason", "value", ...})``
    for a frame the filters drop. Filters look at the resized frame, i.e. at exactly
    what is stored and later validated.
    """
    loader = _HypersimLoader(str(in_dir), frame, M_cam_from_uv)
    return prepare_raw(loader(), frame.key, cfg)


def prepare_raw(
    raw: RawFrame, key: str, cfg: PreprocessConfig
) -> tuple[FrameArrays | None, dict[str, Any]]:
    """:func:`prepare_frame` for a decoded frame of any source (Hypersim or a folder)."""
    raw_rgb_HW3, raw_depth_HW, raw_valid_HW = raw
    H, W = cfg.resolution
    rgb_HW3 = resize_rgb(raw_rgb_HW3, (H, W))
    depth_HW, valid_HW = resize_depth(raw_depth_HW, raw_valid_HW, (H, W), cfg.depth_resize)
    f = cfg.filters
    valid_frac = float(valid_HW.mean())
    invalid_frac = 1.0 - valid_frac
    if invalid_frac > f.max_invalid_frac:
        detail = f"invalid fraction {invalid_frac:.4f} > {f.max_invalid_frac}"
        return None, {"reason": "invalid_fraction", "value": invalid_frac, "detail": detail}
    if not valid_HW.any():  # even a lenient filter cannot make a target from no depth
        detail = "no valid depth pixel (all NaN/inf or non-positive)"
        return None, {"reason": "invalid_fraction", "value": invalid_frac, "detail": detail}
    valid_depth = depth_HW[valid_HW]
    depth_range = float(valid_depth.max() - valid_depth.min())
    if depth_range < f.min_depth_range:
        detail = f"depth range {depth_range:.4f} m < {f.min_depth_range} m"
        return None, {"reason": "depth_range", "value": depth_range, "detail": detail}
    rgb_min, rgb_max = int(rgb_HW3.min()), int(rgb_HW3.max())
    rgb_range = (rgb_max - rgb_min) / 255.0
    if rgb_range < f.min_rgb_range:
        detail = f"rgb range {rgb_range:.4f} < {f.min_rgb_range:.4f}"
        return None, {"reason": "rgb_range", "value": rgb_range, "detail": detail}
    filled_HW = infill_nearest(depth_HW, valid_HW)
    try:
        target_HW, norm = normalise_depth(filled_HW, valid_HW, cfg.space, cfg.percentiles)
    except ValueError as exc:  # e.g. both percentiles on one depth: no usable target
        return None, {"reason": "normalisation", "value": float("nan"), "detail": str(exc)}
    arrays = FrameArrays(rgb_HW3, filled_HW, valid_HW, target_HW, key)
    stats = {
        "height": H,
        "width": W,
        "valid_frac": valid_frac,
        "depth_min": float(filled_HW.min()),
        "depth_max": float(filled_HW.max()),
        "target_min": float(target_HW.min()),
        "target_max": float(target_HW.max()),
        "target_finite": bool(np.isfinite(target_HW).all()),
        "rgb_min": rgb_min,
        "rgb_max": rgb_max,
        "norm_a": norm.a,
        "norm_b": norm.b,
    }
    return arrays, stats


def _ident(frame: FrameId, split: str) -> dict[str, Any]:
    return {
        "key": frame.key,
        "scene": frame.scene,
        "camera": frame.camera,
        "frame": frame.frame,
        "split": split,
    }


def _skip(frame: FrameId, reason: str, detail: str) -> dict[str, Any]:
    return {**_ident(frame, ""), "reason": reason, "value": float("nan"), "detail": detail}


def process_scene(job: SceneJob | FolderJob) -> SceneResult:
    """Worker: prepare every frame of one scene into ``job.scratch`` (one uncompressed shard)."""
    H, W = job.cfg.resolution
    n_frames = len(job.frames)
    result = SceneResult(stats=[], dropped=[])
    writer = ShardWriter(
        job.scratch,
        shard_size=max(n_frames, 1),
        space=job.cfg.space,
        height=H,
        width=W,
        compression=None,  # scratch is read once, right away
    )
    with writer:
        for ident, load in job.items():
            arrays, info = prepare_raw(load(), ident["key"], job.cfg)
            if arrays is None:
                result.dropped.append({**ident, **info})
                continue
            _, index = writer.add(arrays)
            result.stats.append({**ident, "index": index, **info})
    return result


def list_scenes(in_dir: str | Path) -> list[str]:
    """Scene folders (those with an ``images`` subfolder) of a download, sorted."""
    root = Path(in_dir)
    if not root.is_dir():
        raise DataError(f"{root}: input folder not found")
    return sorted(p.name for p in root.iterdir() if (p / "images").is_dir())


def plan_frames(
    in_dir: str | Path, scenes: list[str], split_table: pd.DataFrame, splits: tuple[str, ...]
) -> tuple[dict[str, list[tuple[FrameId, str]]], list[dict[str, Any]]]:
    """Assign each on-disk frame its official split; list the ones to skip and why."""
    wanted = split_table[split_table["scene_name"].isin(scenes)]
    lookup = {
        (r.scene_name, r.camera_name, int(r.frame_id)): r for r in wanted.itertuples(index=False)
    }
    plan: dict[str, list[tuple[FrameId, str]]] = {}
    skipped: list[dict[str, Any]] = []
    for scene in scenes:
        frames = find_frames(in_dir, scene)
        if not frames:  # a broken download (e.g. kinds without colour): say so, do not skip
            raise DataError(
                f"{Path(in_dir) / scene}: empty scene, no frame.IIII.color.hdf5 under "
                "images/scene_cam_XX_final_hdf5"
            )
        todo = []
        for frame in frames:
            row = lookup.get((frame.scene, frame.camera, frame.frame))
            if row is None:
                detail = f"not listed in {split_table.attrs.get('source', 'the split table')}"
                skipped.append(_skip(frame, "not_in_split_table", detail))
            elif not row.included_in_public_release:
                detail = row.exclude_reason or "not public"
                skipped.append(_skip(frame, "not_in_public_release", detail))
            elif row.split_partition_name in splits:
                todo.append((frame, row.split_partition_name))
        if todo:
            plan[scene] = todo
    return plan, skipped


def _assemble(
    out: Path, results: dict[str, SceneResult], scratch: Path, cfg: PreprocessConfig
) -> pd.DataFrame:
    """Copy scratch frames into the final shards, split by split in key order."""
    H, W = cfg.resolution
    rows = [(scene, s) for scene, res in results.items() for s in res.stats]
    stats_rows = []
    for split in cfg.splits:
        (out / split).mkdir(parents=True, exist_ok=True)
        chosen = sorted((r for r in rows if r[1]["split"] == split), key=lambda r: r[1]["key"])
        writer = ShardWriter(
            out / split, shard_size=cfg.shard_size, space=cfg.space, height=H, width=W
        )
        with writer:
            for scene, stat in chosen:
                arrays = read_frame(scratch / scene / "shard_00000.h5", stat["index"])
                name, index = writer.add(arrays)
                stats_rows.append({**stat, "shard": f"{split}/{name}", "index": index})
    return pd.DataFrame(stats_rows, columns=list(STATS_COLUMNS))


def folder_jobs(cfg: PreprocessConfig, scratch: Path) -> list[FolderJob]:
    """A job per configured folder source, with the frames of the requested splits."""
    jobs = []
    for source in cfg.folders:
        frames = folder_data.read_manifest(source.root).frames
        chosen = tuple((i, f) for i, f in enumerate(frames) if f.split in cfg.splits)
        if not chosen:
            splits = list(cfg.splits)
            raise DataError(f"{source.root}: no frames of splits {splits} in its manifest")
        jobs.append(FolderJob(source.name, chosen, str(scratch / source.name), cfg))
    return jobs


def _run_jobs(jobs: list[SceneJob | FolderJob], workers: int) -> dict[str, SceneResult]:
    """Process the scenes, in worker processes when asked; results in job order."""
    if workers == 1 or len(jobs) <= 1:
        outputs: Iterable[SceneResult] = map(process_scene, jobs)
        return _collect(jobs, outputs)
    # fork (as torch DataLoader workers do): workers run numpy/scipy/h5py only, and a
    # fresh interpreter per worker would pay ~1-4 s of imports on a small machine.
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx) as pool:
        return _collect(jobs, pool.map(process_scene, jobs))


def _collect(
    jobs: list[SceneJob | FolderJob], outputs: Iterable[SceneResult]
) -> dict[str, SceneResult]:
    results = {}
    for job, res in zip(jobs, outputs, strict=True):
        log.info("%s: kept %d, dropped %d", job.scene, len(res.stats), len(res.dropped))
        results[job.scene] = res
    return results


def preprocess(cfg: PreprocessConfig) -> pd.DataFrame:
    """Build ``cfg.out_dir`` (shards, ``stats.csv``, ``dropped.csv``, ``config.json``).

    Returns the stats table. The folder is built under a temporary name and renamed
    at the end, so a crash leaves the previous output (if any) untouched.
    """
    plan, skipped, cameras = _plan_hypersim(cfg) if cfg.hypersim else ({}, [], None)
    log.info("%d scenes, %d frames to prepare", len(plan), sum(map(len, plan.values())))
    with atomic_path(cfg.out_dir) as out:
        out.mkdir(parents=True)
        scratch = out / ".scratch"
        jobs: list[SceneJob | FolderJob] = [
            SceneJob(
                in_dir=str(cfg.in_dir),
                scene=scene,
                frames=tuple(frames),
                M_cam_from_uv=camera_matrix(cameras, scene),
                scratch=str(scratch / scene),
                cfg=cfg,
            )
            for scene, frames in plan.items()
        ]
        jobs += folder_jobs(cfg, scratch)
        clash = sorted({j.scene for j in jobs if isinstance(j, FolderJob)} & set(plan))
        if clash:
            raise DataError(f"preprocess.folders: name(s) {clash} clash with Hypersim scenes")
        results = _run_jobs(jobs, cfg.workers)
        stats = _assemble(out, results, scratch, cfg)
        if scratch.exists():
            shutil.rmtree(scratch)
        dropped = [d for res in results.values() for d in res.dropped] + skipped
        dropped_df = pd.DataFrame(dropped, columns=list(DROPPED_COLUMNS))
        dropped_df = dropped_df.sort_values("key", kind="stable").reset_index(drop=True)
        stats.to_csv(out / "stats.csv", index=False)
        dropped_df.to_csv(out / "dropped.csv", index=False)
        (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    log.info("kept %d frames, dropped %d -> %s", len(stats), len(dropped_df), cfg.out_dir)
    return stats


def _plan_hypersim(
    cfg: PreprocessConfig,
) -> tuple[dict[str, list[tuple[FrameId, str]]], list[dict[str, Any]], pd.DataFrame]:
    """The Hypersim frames to prepare, the skipped ones, and the camera table."""
    scenes = list_scenes(cfg.in_dir)
    if not scenes:
        raise DataError(f"{cfg.in_dir}: no Hypersim scene folders (<scene>/images) found")
    split_table = load_split_table(cfg.in_dir)
    plan, skipped = plan_frames(cfg.in_dir, scenes, split_table, cfg.splits)
    return plan, skipped, load_camera_table(cfg.in_dir)
