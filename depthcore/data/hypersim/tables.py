"""The two dataset-wide Hypersim tables: the official split and the per-scene cameras.

A download folder normally carries its own copies (``metadata_images_split_scene_v1.csv``
and ``metadata_camera_parameters.csv``); when it does not, the real tables shipped as
package data are used, so a partial download of real scenes still gets the official
split and the real intrinsics instead of guessed ones.
"""

from __future__ import annotations

import gzip
import io
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from depthcore.errors import DataError

SPLIT_FILE = "metadata_images_split_scene_v1.csv"
CAMERA_FILE = "metadata_camera_parameters.csv"
SPLIT_COLUMNS = (
    "scene_name",
    "camera_name",
    "frame_id",
    "included_in_public_release",
    "exclude_reason",
    "split_partition_name",
)
M_CAM_FROM_UV_COLUMNS = tuple(f"M_cam_from_uv_{i}{j}" for i in range(3) for j in range(3))


def _read_csv(source: Path | str, label: str) -> pd.DataFrame:
    try:
        if isinstance(source, Path):
            return pd.read_csv(source)
        return pd.read_csv(io.StringIO(source))
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{label}: cannot read CSV table: {exc}") from exc


def _packaged(name: str) -> tuple[str, str]:
    """Text and label of the gzip'd package-data copy of table ``name``."""
    ref = resources.files("depthcore").joinpath("resources", "hypersim", f"{name}.gz")
    label = f"package data depthcore/resources/hypersim/{name}.gz"
    try:
        return gzip.decompress(ref.read_bytes()).decode("utf-8"), label
    except (OSError, EOFError) as exc:
        raise DataError(f"{label}: cannot read packaged table: {exc}") from exc


def _load(name: str, in_dir: str | Path | None) -> tuple[pd.DataFrame, str]:
    if in_dir is not None and (Path(in_dir) / name).is_file():
        path = Path(in_dir) / name
        return _read_csv(path, str(path)), str(path)
    text, label = _packaged(name)
    return _read_csv(text, label), label


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...], label: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{label}: missing column(s) {', '.join(missing)}")


def load_split_table(in_dir: str | Path | None = None) -> pd.DataFrame:
    """The official split, one row per frame, with normalised column types.

    ``included_in_public_release`` becomes bool, ``frame_id`` int and an empty
    ``exclude_reason`` the empty string. The table's origin is in ``df.attrs["source"]``.
    """
    df, label = _load(SPLIT_FILE, in_dir)
    _require_columns(df, SPLIT_COLUMNS, label)
    df = df.loc[:, list(SPLIT_COLUMNS)].copy()
    public = df["included_in_public_release"].astype(str).str.strip().str.lower()
    if not public.isin(["true", "false"]).all():
        bad = df.loc[~public.isin(["true", "false"]), "included_in_public_release"].iloc[0]
        raise DataError(f"{label}: included_in_public_release must be True/False, got {bad!r}")
    df["included_in_public_release"] = public == "true"
    df["frame_id"] = pd.to_numeric(df["frame_id"], errors="raise").astype(np.int64)
    df["exclude_reason"] = df["exclude_reason"].astype(object).fillna("").astype(str)
    df["split_partition_name"] = df["split_partition_name"].astype(object).fillna("").astype(str)
    df["scene_name"] = df["scene_name"].astype(str)
    df["camera_name"] = df["camera_name"].astype(str)
    df.attrs["source"] = label
    return df


def load_camera_table(in_dir: str | Path | None = None) -> pd.DataFrame:
    """The per-scene camera table indexed by ``scene_name`` (origin in ``attrs["source"]``)."""
    df, label = _load(CAMERA_FILE, in_dir)
    _require_columns(df, ("scene_name", *M_CAM_FROM_UV_COLUMNS), label)
    if df["scene_name"].duplicated().any():
        dup = df.loc[df["scene_name"].duplicated(), "scene_name"].iloc[0]
        raise DataError(f"{label}: scene {dup} listed twice")
    df = df.set_index("scene_name")
    df.attrs["source"] = label
    return df


def camera_matrix(cameras: pd.DataFrame, scene: str) -> np.ndarray:
    """The scene's 3x3 ``M_cam_from_uv`` (float64) from a :func:`load_camera_table` frame."""
    return camera_matrices(cameras, [scene])[scene]


def camera_matrices(cameras: pd.DataFrame, scenes: list[str]) -> dict[str, np.ndarray]:
    """:func:`camera_matrix` of each of ``scenes``, read off the table in one selection
    instead of one ``.loc`` per scene; errors name the first bad scene in ``scenes``."""
    label = cameras.attrs.get("source", "camera table")
    present = [scene for scene in scenes if scene in cameras.index]
    rows = cameras.loc[present, list(M_CAM_FROM_UV_COLUMNS)].to_numpy(dtype=np.float64)
    found = dict(zip(present, rows, strict=True))
    matrices = {}
    for scene in scenes:
        if scene not in found:
            raise DataError(f"{label}: no camera row for scene {scene}")
        values = found[scene]
        if not np.isfinite(values).all():
            raise DataError(f"{label}: non-finite M_cam_from_uv for scene {scene}")
        matrices[scene] = values.reshape(3, 3)
    return matrices
