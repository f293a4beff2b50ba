"""Hypersim download folder (and your own folders) -> filtered, normalised HDF5 shards + tables.

The official split file decides each frame's split; frames outside the public
release and frames failing the quality filters are listed in ``dropped.csv`` with
the reason. Frames are prepared in jobs of up to ``JOB_FRAMES`` consecutive frames
of one scene, in worker processes when asked; the jobs run in key order and their
results come back in that order (at most two jobs per worker in flight), so the
parent writes them straight into the final shards and the output does not depend
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
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from depthcore.config import frozen, param, to_dict
from depthcore.data import folder as folder_data
from depthcore.data.hypersim.plan import frame_ident, list_scenes, plan_frames, runs
from depthcore.data.hypersim.reader import FrameId, load_frame
from depthcore.data.hypersim.tables import camera_matrices, load_camera_table, load_split_table
from depthcore.data.shards import FrameArrays, ShardWriter
from depthcore.data.transforms import infill_nearest, normalise_depth, resize_depth, resize_rgb
from depthcore.errors import DataError, check_interrupted, interrupted
from depthcore.io import atomic_path, keep_unfinalised

log = logging.getLogger(__name__)

STATS_COLUMNS = (
    "key", "scene", "camera", "frame", "split", "shard", "index", "height", "width",
    "valid_frac", "depth_min", "depth_max", "target_min", "target_max", "target_finite",
    "rgb_min", "rgb_max", "norm_a", "norm_b",
)  # fmt: skip
DROPPED_COLUMNS = ("key", "scene", "camera", "frame", "split", "reason", "value", "detail")
# Frames per job: small enough that a job's prepared frames are cheap to hold and send
# back, large enough that per-job costs (pickling, scheduling) stay small.
JOB_FRAMES = 32


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
    """Consecutive frames of one scene, in key order: everything a worker needs (picklable)."""

    in_dir: str
    scene: str
    frames: tuple[tuple[FrameId, str], ...]  # (frame, split), sorted
    M_cam_from_uv: np.ndarray
    cfg: PreprocessConfig

    def items(self) -> Iterator[tuple[dict[str, Any], Callable[[], RawFrame]]]:
        for frame, split in self.frames:
            yield (
                frame_ident(frame, split),
                _loader(self.in_dir, frame, self.M_cam_from_uv, self.cfg),
            )


@dataclass(frozen=True)
class FolderJob:
    """Consecutive frames (by name) of one folder dataset, processed like a scene (picklable)."""

    scene: str  # the source name: key prefix
    frames: tuple[tuple[int, folder_data.FolderFrame], ...]  # (index in manifest, frame)
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
    depth_size: tuple[int, int] | None = None  # nearest-resize the depth while loading

    def __call__(self) -> RawFrame:
        raw = load_frame(self.in_dir, self.frame, self.M_cam_from_uv, self.depth_size)
        return raw.rgb_HW3, raw.depth_HW, raw.valid_HW


def _loader(
    in_dir: str, frame: FrameId, M_cam_from_uv: np.ndarray, cfg: PreprocessConfig
) -> _HypersimLoader:
    """Nearest depth resizing picks pixels, so the reader converts only those."""
    depth_size = cfg.resolution if cfg.depth_resize == "nearest" else None
    return _HypersimLoader(in_dir, frame, M_cam_from_uv, depth_size)


@dataclass(frozen=True)
class _FolderLoader:
    frame: folder_data.FolderFrame

    def __call__(self) -> RawFrame:
        return folder_data.load_frame(self.frame)


@dataclass
class JobResult:
    kept: list[tuple[dict[str, Any], FrameArrays]]  # (stats row less shard/index, arrays)
    dropped: list[dict[str, Any]]


def prepare_frame(
    in_dir: str | Path, frame: FrameId, M_cam_from_uv: np.ndarray, cfg: PreprocessConfig
) -> tuple[FrameArrays | None, dict[str, Any]]:
    """Read, resize, filter, infill and normalise one frame.

    Returns the stored arrays and their statistics, or ``(None, {"reason", "value", ...})``
    for a frame the filters drop. Filters look at the resized frame, i.e. at exactly
    what is stored and later validated.
    """
    return prepare_raw(_loader(str(in_dir), frame, M_cam_from_uv, cfg)(), frame.key, cfg)


def prepare_raw(
    raw: RawFrame, key: str, cfg: PreprocessConfig
) -> tuple[FrameArrays | None, dict[str, Any]]:
    """:func:`prepare_frame` for a decoded frame of any source (Hypersim or a folder)."""
    raw_rgb_HW3, raw_depth_HW, raw_valid_HW = raw
    H, W = cfg.resolution
    rgb_HW3 = resize_rgb(raw_rgb_HW3, (H, W))
    depth_HW, valid_HW = resize_depth(raw_depth_HW, raw_valid_HW, (H, W), cfg.depth_resize)
    f = cfg.filters
    valid_frac = np.count_nonzero(valid_HW) / valid_HW.size  # = valid_HW.mean(), cheaper
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


def process_job(job: SceneJob | FolderJob) -> JobResult:
    """Worker: prepare the frames of one job, in order."""
    result = JobResult(kept=[], dropped=[])
    for ident, load in job.items():
        arrays, info = prepare_raw(load(), ident["key"], job.cfg)
        if arrays is None:
            result.dropped.append({**ident, **info})
        else:
            result.kept.append(({**ident, **info}, arrays))
    return result


def _write_shards(
    out: Path, results: Iterable[JobResult], cfg: PreprocessConfig
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Write the kept frames, which arrive in key order, into each split's shards."""
    H, W = cfg.resolution
    rows: dict[str, list[dict[str, Any]]] = {split: [] for split in cfg.splits}
    dropped: list[dict[str, Any]] = []
    with ExitStack() as stack:
        writers = {}
        for split in cfg.splits:
            (out / split).mkdir(parents=True, exist_ok=True)
            writer = ShardWriter(
                out / split, shard_size=cfg.shard_size, space=cfg.space, height=H, width=W
            )
            writers[split] = stack.enter_context(writer)
        for result in results:
            dropped += result.dropped
            for stat, arrays in result.kept:
                split = stat["split"]
                name, index = writers[split].add(arrays)
                rows[split].append({**stat, "shard": f"{split}/{name}", "index": index})
    stats = [row for split in cfg.splits for row in rows[split]]
    return pd.DataFrame(stats, columns=list(STATS_COLUMNS)), dropped


def folder_jobs(cfg: PreprocessConfig) -> list[FolderJob]:
    """Jobs for each configured folder source, over its frames of the requested splits."""
    jobs = []
    for source in cfg.folders:
        frames = folder_data.read_manifest(source.root).frames
        chosen = [(i, f) for i, f in enumerate(frames) if f.split in cfg.splits]
        if not chosen:
            splits = list(cfg.splits)
            raise DataError(f"{source.root}: no frames of splits {splits} in its manifest")
        chosen.sort(key=lambda item: item[1].name)  # key order
        jobs += [FolderJob(source.name, run, cfg) for run in runs(chosen, JOB_FRAMES)]
    return jobs


def run_jobs(jobs: list[SceneJob | FolderJob], workers: int) -> Iterator[JobResult]:
    """Results of ``jobs`` in job order, from worker processes when asked.

    At most two jobs per worker are pending, so the prepared frames held in memory
    stay bounded whatever the dataset size.
    """
    if workers == 1 or len(jobs) <= 1:
        yield from map(process_job, jobs)
        return
    # fork (as torch DataLoader workers do): workers run numpy/scipy/h5py only, and a
    # fresh interpreter per worker would pay ~1-4 s of imports on a small machine.
    ctx = multiprocessing.get_context("fork")
    todo = iter(jobs)
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_worker_signals)
    pending = deque(pool.submit(process_job, job) for job in islice(todo, 2 * workers))
    try:
        while pending:
            result = pending.popleft().result()
            check_interrupted()
            pending.extend(pool.submit(process_job, job) for job in islice(todo, 1))
            yield result
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) or interrupted():
            _stop_workers(pool)  # SIGTERM or Ctrl-C: stop the workers now, not after their jobs
        raise
    finally:  # an error: the running jobs end, the queued ones never start
        pool.shutdown(wait=True, cancel_futures=True)


def _worker_signals() -> None:
    """Worker start: Ctrl-C (sent to the whole process group) is the parent's to handle,
    and SIGTERM kills at once (the parent's unwind-on-SIGTERM handler is inherited by fork)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes (their results are no longer wanted).

    ``ProcessPoolExecutor`` has no public way to stop running jobs before Python 3.14
    (``terminate_workers``); its ``_processes`` map holds the worker processes. A worker
    killed while sending a result leaves the pool's reader thread waiting for the rest
    for ever, so the pool is shut down without waiting and never finalised: the stage
    reports and exits with os._exit (:func:`depthcore.io.keep_unfinalised`).
    """
    processes = getattr(pool, "_processes", None) or {}
    for proc in list(processes.values()):
        proc.terminate()
    keep_unfinalised(pool)
    pool.shutdown(wait=False, cancel_futures=True)


def preprocess(cfg: PreprocessConfig) -> pd.DataFrame:
    """Build ``cfg.out_dir`` (shards, ``stats.csv``, ``dropped.csv``, ``config.json``).

    Returns the stats table. The folder is built under a temporary name and renamed
    at the end, so a crash leaves the previous output (if any) untouched.
    """
    plan, skipped, cameras = _plan_hypersim(cfg) if cfg.hypersim else ({}, [], None)
    log.info("%d scenes, %d frames to prepare", len(plan), sum(map(len, plan.values())))
    matrices = camera_matrices(cameras, list(plan)) if cameras is not None else {}
    jobs: list[SceneJob | FolderJob] = [
        SceneJob(str(cfg.in_dir), scene, run, matrices[scene], cfg)
        for scene, frames in plan.items()
        for run in runs(frames, JOB_FRAMES)
    ]
    jobs += folder_jobs(cfg)
    clash = sorted({j.scene for j in jobs if isinstance(j, FolderJob)} & set(plan))
    if clash:
        raise DataError(f"preprocess.folders: name(s) {clash} clash with Hypersim scenes")
    # Keys are "<scene>/...", so sorting jobs by "<scene>/" (stable: runs stay in order)
    # puts every split's frames in key order.
    jobs.sort(key=lambda job: job.scene + "/")
    with atomic_path(cfg.out_dir) as out:
        out.mkdir(parents=True)
        with closing(run_jobs(jobs, cfg.workers)) as results:
            stats, dropped = _write_shards(out, results, cfg)
        dropped_df = pd.DataFrame(dropped + skipped, columns=list(DROPPED_COLUMNS))
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
