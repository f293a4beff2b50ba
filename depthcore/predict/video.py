"""Video in, depth comparable across frames out: ``depthart predict clip.mp4 -o OUT``.

Frames come from a video file (decoded by PyAV, the ``video`` extra, which ships its
own ffmpeg) or from a folder of images (``--video``, frames in name order). Each frame
is predicted alone; the model's output is affine-invariant *per frame* (every frame
is normalised to its own range), so the same wall can take different values in two
frames. The alignment rule fixes that:

* ``--align clip`` (default): frame 0 is the reference. Frame ``t`` gets one affine map
  ``s_t * p_t + b_t`` in the model's normalised space, the least-squares fit of its
  prediction onto the *aligned* frame ``t - 1`` over the pixels finite in both. The
  maps compose, so every frame lands in frame 0's space; neighbours are fitted rather
  than frame 0 itself because a moving camera's consecutive frames overlap most.
  Then one conversion to depth and one colour range serve the whole clip, so values
  and colours are comparable across frames.
* ``--align frame``: no maps (``s = 1, b = 0``); each frame's own colour range, as
  ``depthart predict`` gives for single images.

Outputs, all in ``OUT/<clip>/`` (written under a temporary name, then renamed):
``frames/NNNNN_depth.npy`` and ``_depth.png`` (16-bit), ``depth.mp4`` (colour),
``flicker.png`` (mean absolute change of depth between consecutive frames, for this
alignment and for per-frame depth) and ``align.json`` (the per-frame maps and flicker).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthcore import viz as vis
from depthcore.alignment import fit_scale_shift
from depthcore.errors import DataError
from depthcore.io import atomic_path, leftovers_listed_once
from depthcore.predict.images import load_rgb
from depthcore.predict.inputs import IMAGE_SUFFIXES
from depthcore.spaces import normalised_to_depth

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
ALIGNS = ("clip", "frame")
DEFAULT_FPS = 10.0  # a folder of frames has no frame rate of its own


def is_video_file(path: Path) -> bool:
    """Whether ``path`` names a video by its suffix (``depthart predict`` dispatches on it)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class Clip:
    """Decoded frames (``rgb_HW3`` uint8, one size) and the rate to write the depth video at."""

    name: str
    frames: list[np.ndarray]
    fps: float


def read_video(path: Path, max_pixels: int) -> Clip:
    """Decode every frame of a video file to RGB; a bad file raises one DataError naming it."""
    import av  # the optional ``video`` extra: the base install does not need it

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: cannot read video: it has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else DEFAULT_FPS
            frames = []
            for frame in container.decode(stream):
                if frame.width * frame.height > max_pixels:
                    raise DataError(
                        f"{path}: frames of {frame.width}x{frame.height} exceed --max-pixels"
                    )
                frames.append(frame.to_ndarray(format="rgb24"))
    except (av.FFmpegError, OSError) as exc:
        raise DataError(f"{path}: cannot read video: {exc}") from exc
    if not frames:
        raise DataError(f"{path}: cannot read video: no frames")
    return Clip(path.stem, frames, fps)


def read_frame_folder(folder: Path, max_pixels: int, fps: float = DEFAULT_FPS) -> Clip:
    """The images of ``folder`` in name order as one clip; they must share one size."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no frames (.png/.jpg/...) in the folder")
    frames = [load_rgb(p, max_pixels=max_pixels, limit_hint=" (--max-pixels)")[0] for p in files]
    for path, rgb_HW3 in zip(files, frames, strict=True):
        if rgb_HW3.shape != frames[0].shape:
            raise DataError(
                f"{path}: frame size {rgb_HW3.shape[1]}x{rgb_HW3.shape[0]} differs from "
                f"{files[0].name}'s {frames[0].shape[1]}x{frames[0].shape[0]}"
            )
    return Clip(folder.name, frames, fps)


def read_clip(path: Path, max_pixels: int, fps: float = DEFAULT_FPS) -> Clip:
    """A video file or a folder of frames (see :func:`read_video`, :func:`read_frame_folder`)."""
    if path.is_dir():
        return read_frame_folder(path, max_pixels, fps)
    if not path.is_file():
        raise DataError(f"{path}: no such video file or frame folder")
    if not is_video_file(path):
        raise DataError(
            f"{path}: not a video ({', '.join(VIDEO_SUFFIXES)}); predict images in a separate run"
        )
    return read_video(path, max_pixels)


def align_clip(
    preds: Sequence[np.ndarray], align: str
) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """Normalised predictions put in one space by the module's rule; returns them and the maps.

    ``align="clip"``: frame 0 unchanged, frame ``t`` fitted onto aligned frame ``t - 1``;
    ``"frame"``: unchanged, every map ``(1, 0)``.
    """
    if align not in ALIGNS:
        raise ValueError(f"unknown --align {align!r}: use {' or '.join(ALIGNS)}")
    aligned = [np.asarray(preds[0], dtype=np.float64)]
    maps = [(1.0, 0.0)]
    for pred in preds[1:]:
        pred = np.asarray(pred, dtype=np.float64)
        scale, shift = 1.0, 0.0
        if align == "clip":
            both = np.isfinite(pred) & np.isfinite(aligned[-1])
            scale, shift = fit_scale_shift(pred[both], aligned[-1][both])
        aligned.append(scale * pred + shift)
        maps.append((scale, shift))
    return aligned, maps


def write_video(path: Path, frames_THW3: Sequence[np.ndarray], fps: float) -> None:
    """Encode RGB frames as an H.264 (else MPEG-4) mp4, atomically; odd sizes padded to even."""
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    h, w = frames_THW3[0].shape[:2]
    pad = ((0, h % 2), (0, w % 2), (0, 0))  # yuv420p needs even sizes
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=max(1, round(fps)))
        stream.width, stream.height = w + w % 2, h + h % 2
        stream.pix_fmt = "yuv420p"
        for rgb_HW3 in frames_THW3:
            frame = av.VideoFrame.from_ndarray(np.pad(rgb_HW3, pad, mode="edge"), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def clip_flicker(depth_THW: np.ndarray) -> np.ndarray:
    """Mean ``|d[t] - d[t-1]|`` for ``t >= 1`` over a predicted clip (finite everywhere).

    The masked, scored version for benchmarks is
    :func:`depthcore.evaluation.temporal.flicker` (predict may not import evaluation).
    """
    return np.abs(np.diff(np.asarray(depth_THW, dtype=np.float64), axis=0)).mean(axis=(1, 2))


def _save_flicker_figure(path: Path, curves: dict[str, np.ndarray]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 2.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for label, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=label)
    ax.set_xlabel("frame t (change from t - 1)")
    ax.set_ylabel("mean |depth change|")
    ax.set_title("flicker (depth up to one scale per clip)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def write_clip_outputs(
    out_dir: Path,
    preds: Sequence[np.ndarray],
    space: str,
    near_far_ratio: float,
    *,
    align: str,
    fps: float,
    cmap: str,
    outputs: set[str],
) -> dict[str, object]:
    """Align one clip's normalised predictions and write its outputs to ``out_dir`` at once.

    Returns the record written as ``align.json``.
    """
    aligned, maps = align_clip(preds, align)
    depths = [normalised_to_depth(p, space, near_far_ratio) for p in aligned]
    own = [normalised_to_depth(p, space, near_far_ratio) for p in preds]
    curves: dict[str, np.ndarray] = {}
    if len(preds) > 1:
        curves[f"--align {align}"] = clip_flicker(np.stack(depths))
        if align != "frame":
            curves["per frame (--align frame)"] = clip_flicker(np.stack(own))
    clip_range = None
    if align == "clip":  # one colour range for the clip: the 2..98th percentile of all frames
        lo, hi = (float(v) for v in np.nanpercentile(np.stack(depths), (2.0, 98.0)))
        clip_range = (lo, max(hi, lo + 1e-6))
    record = {
        "align": align,
        "space": space,
        "frames": len(preds),
        "maps": [{"scale": s, "shift": b} for s, b in maps],
        "flicker": {k: [float(v) for v in c] for k, c in curves.items()},
    }
    # a fresh folder of thousands of frames: listed once for leftovers, not per frame
    with atomic_path(out_dir) as tmp, leftovers_listed_once():
        (tmp / "frames").mkdir(parents=True)
        for t, depth_HW in enumerate(depths):
            if "npy" in outputs:
                np.save(tmp / "frames" / f"{t:05d}_depth.npy", depth_HW.astype(np.float32))
            if "png" in outputs:
                vis.save_depth_png16(tmp / "frames" / f"{t:05d}_depth.png", depth_HW)
        if "color" in outputs:
            colour = [vis.colorize(d, cmap=cmap, value_range=clip_range) for d in depths]
            write_video(tmp / "depth.mp4", colour, fps)
        if curves:
            _save_flicker_figure(tmp / "flicker.png", curves)
        (tmp / "align.json").write_text(json.dumps(record, indent=1))
    return record
