"""Which Hypersim frames preprocessing prepares, in which split, and which it skips and why.

The official split table decides each frame's split; frames on disk but missing from
the table, or not in the public release, are listed as skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from depthcore.data.hypersim.reader import FrameId, find_frames
from depthcore.errors import DataError

T = TypeVar("T")


def list_scenes(in_dir: str | Path) -> list[str]:
    """Scene folders (those with an ``images`` subfolder) of a download, sorted."""
    root = Path(in_dir)
    if not root.is_dir():
        raise DataError(f"{root}: input folder not found")
    return sorted(p.name for p in root.iterdir() if (p / "images").is_dir())


def frame_ident(frame: FrameId, split: str) -> dict[str, Any]:
    """The identity columns of a frame's row in ``stats.csv`` / ``dropped.csv``."""
    return {
        "key": frame.key,
        "scene": frame.scene,
        "camera": frame.camera,
        "frame": frame.frame,
        "split": split,
    }


def _skip(frame: FrameId, reason: str, detail: str) -> dict[str, Any]:
    return {**frame_ident(frame, ""), "reason": reason, "value": float("nan"), "detail": detail}


def plan_frames(
    in_dir: str | Path, scenes: list[str], split_table: pd.DataFrame, splits: tuple[str, ...]
) -> tuple[dict[str, list[tuple[FrameId, str]]], list[dict[str, Any]]]:
    """Assign each on-disk frame its official split; list the ones to skip and why.

    Each scene's frames come sorted by camera and frame, which is their key order.
    """
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


def runs(items: Sequence[T], size: int) -> list[tuple[T, ...]]:
    """``items`` cut into consecutive runs of at most ``size`` (the last may be shorter)."""
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]
