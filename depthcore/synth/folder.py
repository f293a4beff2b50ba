"""A generated "your own data" folder: rendered rooms in every depth format the folder reader takes.

It exists so the ``folder`` path (:mod:`depthcore.data.folder`) is exercised end to
end without anyone's private data: frames cycle through 16-bit PNG (millimetres,
``depth_scale: 0.001``), ``.npy`` and ``.pfm`` depth, every other frame has a
validity mask, rgb is PNG, and the manifest is YAML or CSV. Frames are rendered
from :func:`depthcore.synth.scenes.make_room` like the training scenes, with
a seed of their own, so the folder is new data to a model trained on the source.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from PIL import Image

from depthcore.data.folder import write_pfm
from depthcore.data.hypersim.reader import tone_map
from depthcore.errors import DepthcoreError
from depthcore.io import atomic_path
from depthcore.synth.render import default_M_cam_from_uv, render
from depthcore.synth.scenes import make_room, sample_camera

DEPTH_FORMATS = ("png", "npy", "pfm")
PNG_DEPTH_SCALE = 0.001  # metres per unit: millimetres, as most RGB-D sensors store it
MASK_FRACTION = 0.02  # a masked corner small enough to pass the preprocess filters


def _render_frame(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """One rendered view: ``rgb_HW3`` uint8 and planar ``depth_HW`` (NaN where no surface)."""
    scene = make_room(rng, "hypersim")
    camera = sample_camera(rng, scene, default_M_cam_from_uv(width, height))
    out = render(scene, camera, height, width, shadow_samples=1, seed=int(rng.integers(2**31)))
    surface_HW = np.isfinite(out.planar_HW)
    depth_HW = np.where(surface_HW, out.planar_HW, np.nan).astype(np.float32)
    return tone_map(out.hdr_HW3, surface_HW), depth_HW


def _write_depth(path: Path, depth_HW: np.ndarray) -> None:
    if path.suffix == ".png":
        units_HW = np.nan_to_num(np.round(depth_HW / PNG_DEPTH_SCALE), nan=0.0)
        Image.fromarray(np.clip(units_HW, 0, 65535).astype(np.uint16)).save(path)
    elif path.suffix == ".npy":
        np.save(path, depth_HW)
    else:
        write_pfm(path, depth_HW)


def generate_folder(
    out_dir: str | Path,
    splits: Sequence[str] = ("train",) * 6 + ("val", "test"),
    *,
    seed: int = 0,
    height: int = 48,
    width: int = 64,
    manifest: Literal["yaml", "csv"] = "yaml",
) -> Path:
    """Write one rendered frame per entry of ``splits`` (its split) into ``out_dir``.

    Deterministic in ``seed``; the folder appears atomically. Returns ``out_dir``.
    """
    if not splits or height < 16 or width < 16:
        raise DepthcoreError(
            f"need >= 1 frame and a size >= 16x16, got {len(splits)}, {height}x{width}"
        )
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows = []
    with atomic_path(out_dir) as tmp:
        for sub in ("rgb", "depth", "mask"):
            (tmp / sub).mkdir(parents=True)
        for i, split in enumerate(splits):
            rgb_HW3, depth_HW = _render_frame(rng, height, width)
            row = {
                "rgb": f"rgb/{i:04d}.png",
                "depth": f"depth/{i:04d}.{DEPTH_FORMATS[i % len(DEPTH_FORMATS)]}",
                "split": split,
            }
            Image.fromarray(rgb_HW3).save(tmp / row["rgb"])
            _write_depth(tmp / row["depth"], depth_HW)
            if i % 2 == 1:
                mask_HW = np.full((height, width), 255, np.uint8)
                side = max(1, int(np.sqrt(MASK_FRACTION * height * width)))
                mask_HW[:side, :side] = 0
                row["mask"] = f"mask/{i:04d}.png"
                Image.fromarray(mask_HW).save(tmp / row["mask"])
            rows.append(row)
        if manifest == "yaml":
            doc = {"depth_scale": PNG_DEPTH_SCALE, "max_depth": 60.0, "frames": rows}
            (tmp / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        else:
            text = io.StringIO()
            columns = ["rgb", "depth", "mask", "split", "depth_scale"]
            writer = csv.DictWriter(text, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows({**r, "depth_scale": PNG_DEPTH_SCALE} for r in rows)
            (tmp / "manifest.csv").write_text(text.getvalue())
    return out_dir
